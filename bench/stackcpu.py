"""CPU seconds used so far by the processes of a stack started by scripts/stack.sh
(bench/load.py, bench/request_cpu.py --http): the machine may be shared, the
CPU time each request costs the stack is not."""
import os

GROUPS = {"web": ("nginx", "gunicorn"), "jobs": ("rq1", "rq2", "redis")}


def stack_cpu(stack_dir, by_group=False):
    """Total CPU seconds of nginx, gunicorn (and its workers), the rq workers (and
    their finished work-horses), Redis and PostgreSQL (and its backends); with
    by_group a dict {"web": s, "jobs": s, "pg": s}."""
    import psutil

    roots = {}
    for group, names in GROUPS.items():
        for name in names:
            try:
                with open(os.path.join(stack_dir, f"{name}.pid")) as fh:
                    roots[int(fh.read().split()[0])] = group
            except (OSError, ValueError):
                pass
    try:
        with open(os.path.join(stack_dir, "pg", "postmaster.pid")) as fh:
            roots[int(fh.readline())] = "pg"
    except (OSError, ValueError):
        pass
    totals = {"web": 0.0, "jobs": 0.0, "pg": 0.0}
    for pid, group in roots.items():
        try:
            root = psutil.Process(pid)
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            continue
        for p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            totals[group] += t.user + t.system + t.children_user + t.children_system
    return totals if by_group else sum(totals.values())
