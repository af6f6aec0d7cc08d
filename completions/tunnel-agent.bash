# bash completion for tunnel-agent (installed to /usr/share/bash-completion/completions/tunnel-agent).
# Options, their values where there is a fixed set, files for the options that take a file, and the
# 'check' and 'help' commands. Keep in step with `tunnel-agent --help` (tests/integration/test_completion.py).
_tunnel_agent() {
  local cur prev words cword
  if declare -F _init_completion >/dev/null; then
    _init_completion -n = || return
  else
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}
  fi
  local options="-h --help -V --version -L --forward --stdio --stdio-linger -l --listen --on-busy
    -H --header --secret-header --secret-file -x --proxy --no-proxy --pac --proxy-auto --proxy-user --proxy-password-file
    --proxy-auth --cacert --capath -k --insecure --cert --key --pinned-pubkey --proxy-cacert
    --proxy-insecure --connect-timeout --request-timeout --stall-warning --retry-window -v --verbose
    -q --quiet --no-status-line --stats-interval --log-format --config --no-config --print-config"
  case $prev in
    --on-busy) COMPREPLY=($(compgen -W "wait refuse" -- "$cur")); return ;;
    --proxy-auth) COMPREPLY=($(compgen -W "any basic digest ntlm negotiate" -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
    --secret-file | --pac | --proxy-password-file | --cacert | --cert | --key | --proxy-cacert | --config | --pinned-pubkey)
      COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null; return ;;
    --capath) COMPREPLY=($(compgen -d -- "$cur")); compopt -o filenames 2>/dev/null; return ;;
    -H | --header)
      if [[ $cur == @* ]]; then
        COMPREPLY=($(compgen -f -P @ -- "${cur#@}")); compopt -o filenames 2>/dev/null
      fi
      return ;;
    -L | --forward | -l | --listen | --secret-header | -x | --proxy | --proxy-user | --stdio-linger | \
    --connect-timeout | --request-timeout | --stall-warning | --retry-window | --stats-interval)
      return ;;  # a value of the user's own
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$options" -- "$cur"))
  elif [[ ${COMP_CWORD} -eq 1 ]]; then
    COMPREPLY=($(compgen -W "check help" -- "$cur"))
  fi
}
complete -F _tunnel_agent tunnel-agent
