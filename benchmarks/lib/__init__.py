"""Shared code of the benchmark scripts in ``benchmarks/``.

The scripts are run as files (``python benchmarks/run_benchmark.py``); Python puts the
script's folder first on ``sys.path``, so ``import lib`` finds this package without any path
manipulation. The drivers in ``benchmarks/drivers/`` run in the peers' environments (without
stemmap or this package) and share their input/output code through ``drivers/driver_io.py``
beside them.

The modules:

- ``methods``: the table of benchmarked methods (name -> label, driver, environment,
  options);
- ``environments``: paths of the repository, the drivers and the method environments;
  building those;
- ``data``: the shared data, pseudo spots (:mod:`stemmap.simulate`), the disjoint split,
  the held-out-gene folds, synthetic tissues and driver inputs;
- ``runner``: running a driver in its environment (timing, peak memory, timeouts, cached
  outputs), child processes that report one ``RESULT`` line, competing busy loops, the
  load average, the batch plan;
- ``scoring``: the metrics tables (:mod:`stemmap.metrics`) and the held-out-gene scores;
- ``readouts``: readout studies of saved stemmap models (semi-simulations, held-out genes)
  and the spot-side / bisection readouts of issue #17;
- ``report``: markdown and CSV writing, number formatting, the machine line, position plots.
"""
