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

# ktstr_mixed SECS [HOGS [SLEEPERS [LIMIT_PCT]]]: a mixed load for SECS seconds, each part
# with its own comm so that tests find it:
#   HOGS busy loops (ktstr-hog; 0 or absent: one per CPU);
#   SLEEPERS tasks waking every 10 ms (ktstr-sleeper; default 2);
#   a pipe pair passing a counter back and forth over two FIFOs (ktstr-ping, ktstr-pong);
#   a busy loop in the cgroup ktstr-limited whose cpu.max allows LIMIT_PCT % of one CPU
#   (ktstr-limited; default 20).
# $KTSTR_CGROUP_ROOT (default /sys/fs/cgroup) and $TMPDIR (FIFOs, default /tmp) let the
# host's tests run it. Returns 0, or 1 when the cgroup could not be set up (the rest ran).
ktstr_mixed() {
    _secs="$1"; _hogs="${2:-0}"; _sleepers="${3:-2}"; _pct="${4:-20}"
    [ "$_hogs" -gt 0 ] || _hogs=$(nproc)
    _rc=0
    _i=0
    while [ "$_i" -lt "$_hogs" ]; do
        timeout "$_secs" sh -c 'echo -n ktstr-hog > /proc/$$/comm; while :; do :; done' &
        _i=$(( _i + 1 ))
    done
    _i=0
    while [ "$_i" -lt "$_sleepers" ]; do
        timeout "$_secs" sh -c \
            'echo -n ktstr-sleeper > /proc/$$/comm; while :; do usleep 10000; done' &
        _i=$(( _i + 1 ))
    done
    _fifo="${TMPDIR:-/tmp}/ktstr-pipe.$$"
    mkfifo "$_fifo.ping" "$_fifo.pong"
    # Both ends open each FIFO read-write, so neither open blocks on the other.
    timeout "$_secs" sh -c 'echo -n ktstr-pong > /proc/$$/comm
        exec 3<>"$1.ping" 4<>"$1.pong"
        while read -r t <&3; do echo "$t" >&4; done' sh "$_fifo" &
    timeout "$_secs" sh -c 'echo -n ktstr-ping > /proc/$$/comm
        exec 3<>"$1.ping" 4<>"$1.pong"
        t=0
        while echo "$t" >&3 && read -r t <&4; do t=$(( t + 1 )); done' sh "$_fifo" &
    _cg="${KTSTR_CGROUP_ROOT:-/sys/fs/cgroup}/ktstr-limited"
    if mkdir -p "$_cg" && echo "$(( _pct * 1000 )) 100000" > "$_cg/cpu.max"; then
        timeout "$_secs" sh -c 'echo $$ > "$1/cgroup.procs" &&
            echo -n ktstr-limited > /proc/$$/comm && while :; do :; done' sh "$_cg" &
    else
        echo "ktstr_mixed: no CPU-limited cgroup at $_cg" >&2
        _rc=1
    fi
    wait
    rm -f "$_fifo.ping" "$_fifo.pong"
    return "$_rc"
}
