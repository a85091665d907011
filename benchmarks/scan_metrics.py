"""How many files a Spark query opened, per table: Spark's own scan metrics, read from the executed plan.

`numFiles` of each file scan counts the files left after partition pruning and Delta's data skipping,
which is what "a micro-batch reads only the files its batch needs" is about. The plan is reached
through py4j (`DataFrame._jdf`, Spark's internal plan classes), so this works on an in-process session
only, and it is kept in this one place: the history benchmark and the tests both use it, and a Spark
upgrade that renames the classes fails `test_files_scanned_counts_the_files_a_query_opens` loudly.
"""

from __future__ import annotations

from pyspark.sql import DataFrame


def _items(seq):
    iterator = seq.iterator()
    while iterator.hasNext():
        yield iterator.next()


def files_scanned(df: DataFrame) -> dict[str, int]:
    """Runs the query (collects it); the number of files its scans opened, per table path."""
    df.collect()
    scanned: dict[str, int] = {}

    def walk(node) -> None:
        name = node.getClass().getSimpleName()
        if name == "FileSourceScanExec":
            path = ",".join(str(p).removeprefix("file:") for p in _items(node.relation().location().rootPaths()))
            scanned[path] = scanned.get(path, 0) + node.metrics().get("numFiles").get().value()
        children = list(_items(node.children()))
        if name == "AdaptiveSparkPlanExec":
            children.append(node.executedPlan())
        if name.endswith("QueryStageExec"):
            children.append(node.plan())
        for child in children:
            walk(child)

    walk(df._jdf.queryExecution().executedPlan())
    return scanned
