"""The Knowledge API: Dify's `/v1/datasets…` endpoints, async, for `dataset-` keys."""
