"""Python's ProcessPoolExecutor on the sleep-bound scaling workload of
'submit bench --scaling': N tasks that each sleep 10 ms, mapped at
chunksize 1 over P processes (64 by default: the 4 x 16 slots of the jetpool
figure). Usage: sleepscaling.py [N] [P]. Prints the time taken and the
efficiency (the ideal, N*10ms/P, over the time taken) as "name: value unit"."""
import concurrent.futures as cf
import sys
import time

SLEEP_MS = 10


def nap(ms):
    time.sleep(ms / 1000)
    return ms


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 32_000
    procs = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    with cf.ProcessPoolExecutor(max_workers=procs) as ex:
        list(ex.map(nap, [0] * procs))  # start the processes
        start = time.perf_counter()
        for v in ex.map(nap, [SLEEP_MS] * n, chunksize=1):
            assert v == SLEEP_MS
        took = time.perf_counter() - start
    ideal = n * SLEEP_MS / 1000 / procs
    print(f"python scaling: {n} x {SLEEP_MS}ms, chunksize 1, {procs} procs: {took * 1000:.0f} ms")
    print(f"python scaling efficiency, chunksize 1: {100 * ideal / took:.1f} %")


if __name__ == "__main__":
    main()
