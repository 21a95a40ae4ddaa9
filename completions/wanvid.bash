_wanvid_completion() {
    local IFS=$'
'
    COMPREPLY=( $( env COMP_WORDS="${COMP_WORDS[*]}" \
                   COMP_CWORD=$COMP_CWORD \
                   _WANVID_COMPLETE=complete_bash $1 ) )
    return 0
}

complete -o default -F _wanvid_completion wanvid
