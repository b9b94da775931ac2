# Workload helpers, sourced by /init and by the workload's shell (busybox sh).

# ktstr_spin N SECS: N busy loops for SECS seconds; returns 0 when they ran out of time.
ktstr_spin() {
    _n="$1"
    while [ "$_n" -gt 0 ]; do
        timeout "$2" sh -c 'while :; do :; done' &
        _n=$(( _n - 1 ))
    done
    wait
    return 0
}

# ktstr_victim SECS: one busy loop named ktstr-victim (the stall scheduler's default
# victim) for SECS seconds; returns 0 when it ran out of time.
ktstr_victim() {
    timeout "$1" sh -c 'echo -n ktstr-victim > /proc/$$/comm; while :; do :; done'
    return 0
}
