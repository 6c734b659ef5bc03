"""The hello tools, in Python.

componentize-py generates the `wit_world` bindings from wit/ when it builds
the component: each function of the exported interface is a method of the
class below, and a tool error is raised as `Err(ToolError(...))`.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import hello_tools
from wit_world.imports import log
from wit_world.imports.types import ErrorCategory, ToolError


def refusal(code: str, message: str, suggestion: str) -> Err:
    """A tool error the model can act on: what went wrong and what to do next."""
    return Err(ToolError(
        error=message, category=ErrorCategory.VALIDATION_FAILED, code=code, recoverable=True,
        suggestions=[suggestion], build_id=None, template_id=None, detail=None, validations=None, task_id=None,
    ))


class HelloTools(exports.HelloTools):
    def greet(self, args: hello_tools.GreetArgs) -> hello_tools.Greeting:
        name = args.name.strip()
        if not name:
            raise refusal("NAME_REQUIRED", "name is required", "Call greet again with the name of the person to greet.")
        log.log(log.Level.INFO, f"greeting {name}")
        return hello_tools.Greeting(text=f"Hello, {name}!")
