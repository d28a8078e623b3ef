"""agentkit: agents on a model you host yourself, with tool calls that always parse.

Example:
    >>> from agentkit import Agent, tool
    >>> from agentkit.testing import ScriptedBackend
    >>> @tool
    ... def shout(text: str) -> str:
    ...     '''Upper-case a text.'''
    ...     return text.upper()
    >>> backend = ScriptedBackend([{"calls": [{"name": "shout", "arguments": {"text": "hi"}}]},
    ...                            {"final_answer": "HI"}])
    >>> Agent(backend, tools=[shout]).run("Shout hi").output
    'HI'

The local engine lives in `agentkit.engine` (it needs the `local` extra: torch, transformers...);
importing `agentkit` itself stays light.
"""

from agentkit.agent import Agent
from agentkit.backend import Backend, Generation, GenerationRequest
from agentkit.constraints import JsonSchemaConstraint, LarkConstraint
from agentkit.context import ContextPolicy
from agentkit.errors import (
    AgentkitError,
    ContextOverflowError,
    GrammarError,
    InvalidArgumentsError,
    InvalidStepError,
    MaxStepsExceeded,
    ModelCapabilityError,
    ModelLoadError,
    ToolDefinitionError,
    ToolError,
)
from agentkit.formats import StepFormat
from agentkit.images import Image
from agentkit.policy import ToolPolicy
from agentkit.prompting import Example, ExampleCall
from agentkit.registry import ToolRegistry
from agentkit.remote import RemoteBackend, RemoteError
from agentkit.steps import StepLimits
from agentkit.tool import Tool, tool
from agentkit.types import Compaction, DiscardedCall, Message, Observation, RunResult, SamplingSettings, Step, ToolCall, Usage

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "AgentkitError",
    "Backend",
    "Compaction",
    "ContextOverflowError",
    "ContextPolicy",
    "DiscardedCall",
    "Example",
    "ExampleCall",
    "Generation",
    "GenerationRequest",
    "GrammarError",
    "Image",
    "InvalidArgumentsError",
    "InvalidStepError",
    "JsonSchemaConstraint",
    "LarkConstraint",
    "MaxStepsExceeded",
    "Message",
    "ModelCapabilityError",
    "ModelLoadError",
    "Observation",
    "RemoteBackend",
    "RemoteError",
    "RunResult",
    "SamplingSettings",
    "Step",
    "StepFormat",
    "StepLimits",
    "Tool",
    "ToolCall",
    "ToolDefinitionError",
    "ToolError",
    "ToolPolicy",
    "ToolRegistry",
    "Usage",
    "__version__",
    "tool",
]
