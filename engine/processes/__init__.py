"""Task programs as processes: running them, finding every process they start, and killing them.

Several components share this machinery, so it sits below all of them: the script tasks run
programs (`run.run_process`, spawned or forked from a warm interpreter by `forkserver`), the worker
watches those of each attempt (`run.PROCESS_WATCH`) and keeps the forkservers
(`forkserver.FORKSERVERS`), the expression offloader registers its helper processes
(`tree.spawning`), the store keeps a `record.ProcessRecord` of each running program, and crash
recovery kills what a crashed engine left (`leftovers.kill_leftovers`). It imports none of them.
"""
