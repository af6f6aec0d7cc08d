"""Shell completion (completions/, installed by the package): bash's completes options, their fixed
values and the commands when run the way bash runs it, and both scripts know exactly the options that
`tunnel-agent --help` lists."""
import os
import re
import shutil
import subprocess
import unittest

from harness import AGENT

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BASH = os.path.join(ROOT, "completions", "tunnel-agent.bash")
ZSH = os.path.join(ROOT, "completions", "_tunnel-agent")


def help_options():
    text = subprocess.run([AGENT, "--help"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", "\n".join(
        line.split("  ")[1] if line.startswith("  -") else "" for line in text.splitlines())))


def script_options(path):
    with open(path) as f:
        text = f.read()
    if path == ZSH:
        # '(- *)'{-h,--help}'[...]' and '--stdio[...]'
        found = set()
        for braces in re.findall(r"\{(-[^}]+)\}", text):
            found.update(braces.split(","))
        found.update(re.findall(r"'(--[a-z][\w-]*)\[", text))
        found.update(re.findall(r"\"(--[a-z][\w-]*)\[", text))
        return found
    block = re.search(r'local options="([^"]*)"', text).group(1)
    return set(block.split())


def complete(*words):
    """What bash's completion offers for the command line `words` (the last one being typed)."""
    line = " ".join(f"'{w}'" for w in words)
    script = (f"source '{BASH}'; COMP_WORDS=(tunnel-agent {line}); COMP_CWORD={len(words)}; "
              "_tunnel_agent; printf '%s\\n' \"${COMPREPLY[@]}\"")
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    return [w for w in out.splitlines() if w]


class Completion(unittest.TestCase):
    def test_the_scripts_know_exactly_the_options_of_help(self):
        expected = help_options()
        self.assertIn("--proxy-auth", expected)  # the help parse itself works
        for path in (BASH, ZSH):
            with self.subTest(script=os.path.basename(path)):
                found = script_options(path)
                self.assertEqual(sorted(expected - found), [], "options --help lists that the script lacks")
                self.assertEqual(sorted(found - expected), [], "options the script offers that --help does not list")

    def test_bash_completes_options_values_and_commands(self):
        self.assertEqual(complete("--proxy-a"), ["--proxy-auto", "--proxy-auth"])
        self.assertEqual(sorted(complete("--on-busy", "")), ["refuse", "wait"])
        self.assertEqual(complete("--log-format", "j"), ["json"])
        self.assertEqual(complete("ch"), ["check"])
        self.assertEqual(complete("--secret-file", "READ"), ["README.md"])  # a file, from where it is run
        self.assertEqual(complete("--capath", "doc"), ["docs"])
        self.assertEqual(complete("--listen", ""), [])  # the user's own value: nothing made up

    def test_zsh_reads_its_script(self):
        zsh = shutil.which("zsh")
        self.assertIsNotNone(zsh, "zsh is missing: run scripts/setup (it installs it)")
        result = subprocess.run([zsh, "-n", ZSH], capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        # And the function loads in a real completion system without an error.
        script = f"autoload -U compinit; compinit -u -D; fpath=('{os.path.dirname(ZSH)}' $fpath); " \
                 "autoload -U _tunnel-agent; whence -w _tunnel-agent"
        result = subprocess.run([zsh, "-f", "-c", script], capture_output=True, text=True)
        self.assertIn("_tunnel-agent: function", result.stdout, result.stderr)


if __name__ == "__main__":
    unittest.main()
