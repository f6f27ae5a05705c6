"""Retrieval over datasets: semantic, full-text, hybrid (weighted or reciprocal rank fusion),
optional rerank, score threshold, top-k and metadata filters; what hit testing, the Knowledge
API and the apps' knowledge retrieval all call. (Being built: see the knowledge issue.)"""
