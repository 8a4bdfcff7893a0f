"""Python's ProcessPoolExecutor on the workloads of 'submit bench': submit of
N square tasks (all in flight, then every result) and map over M ints with a
chunksize. Usage: processpool.py [N] [M] [CHUNKSIZE]. Prints one line per
figure as "name: value unit"."""
import concurrent.futures as cf
import sys
import time


def square(n):
    return n * n


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    m = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    with cf.ProcessPoolExecutor() as ex:
        list(ex.map(square, range(1000)))  # start the processes
        start = time.perf_counter()
        fs = [ex.submit(square, i) for i in range(n)]
        for i, f in enumerate(fs):
            assert f.result() == i * i
        submit = n / (time.perf_counter() - start)
        start = time.perf_counter()
        for i, v in enumerate(ex.map(square, range(m), chunksize=chunk)):
            assert v == i * i
        mapped = m / (time.perf_counter() - start)
    print(f"python ProcessPoolExecutor submit->result: {submit:.1f} tasks/s")
    print(f"python ProcessPoolExecutor map chunksize {chunk}: {mapped:.1f} items/s")


if __name__ == "__main__":
    main()
