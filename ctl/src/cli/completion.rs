//! `tug completion bash|zsh|fish|...`: clap's scripts; bash also completes resource types and
//! the names of objects from the server (`tug get deploy <TAB>`).

use clap_complete::Shell;

/// Resource types after the verb, object names after the type, from the live server.
const BASH_NAMES: &str = r#"
_tug_with_names() {
    local cur="${COMP_WORDS[COMP_CWORD]}" i=1 word
    local -a flags=() words=()
    while [[ $i -lt $COMP_CWORD ]]; do
        word="${COMP_WORDS[i]}"
        case "$word" in
            -n|--namespace|--context|--kubeconfig)
                flags+=("$word" "${COMP_WORDS[i+1]}"); i=$((i+2)); continue;;
            --namespace=*|--context=*|--kubeconfig=*) flags+=("$word");;
            -*) ;;
            *) words+=("$word");;
        esac
        i=$((i+1))
    done
    if [[ "$cur" != -* ]]; then
        case "${words[0]}" in
            get|describe|delete|edit|label|annotate|scale|autoscale)
                if [[ ${#words[@]} -eq 1 ]]; then
                    COMPREPLY=( $(compgen -W "$(tug "${flags[@]}" api-resources --no-headers 2>/dev/null | awk '{print $1}')" -- "$cur") )
                    return 0
                fi
                COMPREPLY=( $(compgen -W "$(tug "${flags[@]}" get "${words[1]}" -o 'custom-columns=NAME:.metadata.name' --no-headers 2>/dev/null)" -- "$cur") )
                return 0
                ;;
            logs)
                COMPREPLY=( $(compgen -W "$(tug "${flags[@]}" get pods -o 'custom-columns=NAME:.metadata.name' --no-headers 2>/dev/null)" -- "$cur") )
                return 0
                ;;
        esac
    fi
    _tug "$@"
}
if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _tug_with_names -o nosort -o bashdefault -o default tug
else
    complete -F _tug_with_names -o bashdefault -o default tug
fi
"#;

/// Print the completion script for `shell` (a closed pipe is not an error).
pub fn print(shell: Shell, command: &mut clap::Command) {
    let mut script = Vec::new();
    clap_complete::generate(shell, command, "tug", &mut script);
    if shell == Shell::Bash {
        script.extend_from_slice(BASH_NAMES.as_bytes());
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
}
