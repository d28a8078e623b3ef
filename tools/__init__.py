"""Built-in tools. Each one enforces its own limits, whatever the model asks.

Example:
    >>> from agentkit.tools import calculator
    >>> calculator(expression="2 ** 10")
    '1024'
"""

from agentkit.tools.calculator import calculator

__all__ = ["calculator"]
