# Shared by the benchmark scripts: `best CMD` prints the best wall time of $runs runs of CMD.
best() {
    local best=999999 t0 t1 t
    for _ in $(seq "$runs"); do
        t0=$(date +%s.%N)
        bash -c "$1" >/dev/null
        t1=$(date +%s.%N)
        t=$(echo "$t1 - $t0" | bc -l)
        if (($(echo "$t < $best" | bc -l))); then best=$t; fi
    done
    printf '%.3f' "$best"
}

# `verdict EXPR` prints PASS when the bc expression holds, else FAIL and sets fail=1.
verdict() {
    if (($(echo "$1" | bc -l))); then echo "  PASS"; else
        echo "  FAIL"
        fail=1
    fi
}
