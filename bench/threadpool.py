"""Python's ThreadPoolExecutor on the workload of BenchmarkLocalSubmitResult
and BenchmarkLocalMap: trivial square tasks, submit all then collect all, and
map with chunksize 100. Prints one line per figure."""
import concurrent.futures as cf
import sys
import time


def square(n):
    return n * n


def submit_result(n):
    with cf.ThreadPoolExecutor() as ex:
        start = time.perf_counter()
        fs = [ex.submit(square, i) for i in range(n)]
        for i, f in enumerate(fs):
            assert f.result() == i * i
        return n / (time.perf_counter() - start)


def map_items(n):
    with cf.ThreadPoolExecutor() as ex:
        start = time.perf_counter()
        for i, v in enumerate(ex.map(square, range(n), chunksize=100)):
            assert v == i * i
        return n / (time.perf_counter() - start)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    print(f"python ThreadPoolExecutor submit+result: {submit_result(n):,.0f} tasks/s")
    print(f"python ThreadPoolExecutor map:           {map_items(n):,.0f} items/s")
