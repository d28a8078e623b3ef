"""Evaluations of an agent's tool calling (`agentkit eval ...`). Optional: `pip install 'agentkit[eval]'`.

- `agentkit.evals.bfcl`: the Berkeley Function Calling Leaderboard's non-live AST categories.

Example:
    >>> from agentkit.evals.bfcl import CATEGORIES
    >>> CATEGORIES[:2]
    ('simple_python', 'multiple')
"""
