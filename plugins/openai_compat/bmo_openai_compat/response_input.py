"""What a ``POST /v1/responses`` input adds to its session: agent messages, and the input items as stored."""

from __future__ import annotations

from bmo.agent.messages import ChatMessage, FunctionCall, ToolCall
from bmo_openai_compat import responses_wire as rw
from bmo_openai_compat.stream.response_events import item_id


def to_messages(req: rw.ResponseCreateRequest, *, starts_session: bool) -> list[ChatMessage]:
    """The request's input as chat messages; ``instructions`` lead them only when the conversation starts.

    Consecutive ``function_call`` items become one assistant message with several tool calls, joined
    to the assistant message just before them (the model's text and its calls are one turn).
    """
    out: list[ChatMessage] = []
    if req.instructions and starts_session:
        out.append(ChatMessage(role="system", content=req.instructions))
    items = [rw.InputItem(role="user", content=req.input)] if isinstance(req.input, str) else req.input or []
    for item in items:
        if item.type == "message":
            role = "system" if item.role == "developer" else item.role
            out.append(ChatMessage(role=role, content=rw.part_text(item.content)))
        elif item.type == "function_call":
            call = ToolCall(id=item.call_id, function=FunctionCall(name=item.name, arguments=item.arguments or ""))
            last = out[-1] if out else None
            if last is not None and last.role == "assistant":
                last.tool_calls = [*(last.tool_calls or []), call]
            else:
                out.append(ChatMessage(role="assistant", tool_calls=[call]))
        elif item.type == "function_call_output":
            output = item.output if isinstance(item.output, str) else rw.part_text(item.output)
            out.append(ChatMessage(role="tool", tool_call_id=item.call_id, content=output))
        # reasoning and item_reference items carry nothing BMO's session does not already hold.
    return out


def stored_items(req: rw.ResponseCreateRequest) -> list[rw.StoredItem]:
    """The input items as ``GET /v1/responses/{id}/input_items`` lists them, each with an id."""
    if isinstance(req.input, str):
        return [rw.InputMessage(id=item_id("msg"), role="user", content=[rw.InputText(text=req.input)])]
    out: list[rw.StoredItem] = []
    for item in req.input or ():
        if item.type == "message" and item.role == "assistant":
            out.append(rw.OutputMessage(id=item.id or item_id("msg"), status="completed",
                                        content=[rw.OutputText(text=rw.part_text(item.content))]))
        elif item.type == "message":
            out.append(rw.InputMessage(id=item.id or item_id("msg"), role=item.role,
                                       content=[rw.InputText(text=rw.part_text(item.content))]))
        elif item.type == "function_call":
            out.append(rw.FunctionCallItem(id=item.id or item_id("fc"), call_id=item.call_id, name=item.name,
                                           arguments=item.arguments or ""))
        elif item.type == "function_call_output":
            output = item.output if isinstance(item.output, str) else rw.part_text(item.output)
            out.append(rw.FunctionCallOutputItem(id=item.id or item_id("fco"), call_id=item.call_id, output=output))
    return out
