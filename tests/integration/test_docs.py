"""The man page and the README keep up with the program: every long option of --help is in both,
the man page renders without warnings, and its version is the program's."""
import os
import re
import shutil
import subprocess
import unittest

from harness import AGENT

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def mentions(text, option):
    """`option` appears as a whole option: not only as the start of a longer one (--proxy is in
    --proxy-cacert, --stdio in --stdio-linger)."""
    return re.search(rf"{re.escape(option)}(?![a-z0-9-])", text) is not None


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


class Docs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.help = subprocess.run([AGENT, "--help"], capture_output=True, text=True, timeout=30, check=True).stdout
        cls.options = sorted(set(re.findall(r"^\s+(?:-\w,)?(--[a-z][a-z0-9-]+)", cls.help, re.M)))

    def test_help_lists_the_options(self):
        # Guards the parsing below: a --help that changed shape would otherwise check nothing.
        for option in ("--listen", "--forward", "--config", "--print-config", "--stats-interval", "--version"):
            self.assertIn(option, self.options)

    def test_the_man_page_describes_every_option(self):
        page = read("docs/tunnel-agent.1").replace("\\-", "-")
        missing = [o for o in self.options if not mentions(page, o)]
        self.assertEqual(missing, [], "options of --help missing from docs/tunnel-agent.1")

    def test_the_readme_names_every_option(self):
        readme = read("README.md")
        missing = [o for o in self.options if not mentions(readme, o)]
        self.assertEqual(missing, [], "options of --help missing from README.md")

    def test_an_option_named_only_as_part_of_a_longer_one_is_missing(self):
        self.assertFalse(mentions("use --proxy-cacert FILE", "--proxy"))
        self.assertTrue(mentions("use --proxy URL, or --proxy-cacert", "--proxy"))
        self.assertTrue(mentions("ends with --stdio.", "--stdio"))

    def test_the_man_page_has_the_program_version(self):
        version = subprocess.run([AGENT, "--version"], capture_output=True, text=True, timeout=30).stdout.split()[1]
        self.assertRegex(read("docs/tunnel-agent.1"), rf'^\.TH TUNNEL-AGENT 1 "[0-9-]+" "tunnel-agent {re.escape(version)}"',)

    def test_the_man_page_renders_without_warnings(self):
        self.assertTrue(shutil.which("groff"), "needs groff (groff-base): scripts/setup installs it")
        run = subprocess.run(["groff", "-man", "-ww", "-z", os.path.join(ROOT, "docs/tunnel-agent.1")],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual((run.returncode, run.stderr), (0, ""))


if __name__ == "__main__":
    unittest.main()
