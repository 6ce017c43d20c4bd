"""Normalization: tool blocks repaired as wholes, steered messages moved, protocol checks."""

from __future__ import annotations

from botframework.budget.normalize import (
    alternation_groups,
    alternation_violations,
    flatten_tool_messages,
    group_turns,
    repair_tool_blocks,
    tool_protocol_violations,
)
from botframework.messages import Message, ToolCall


def call(*ids: str) -> Message:
    return Message.assistant("", tool_calls=[ToolCall(id=i, name="lookup", arguments="{}") for i in ids])


def result(cid: str, text: str = "ok") -> Message:
    return Message.tool_result(cid, text)


def shape(messages: list[Message]) -> list[str]:
    out = []
    for m in messages:
        if m.role == "tool":
            out.append(f"T:{m.tool_call_id}")
        elif m.tool_calls:
            out.append("A:" + ",".join(c.id for c in m.tool_calls))
        else:
            out.append(f"{m.role[0].upper()}:{m.text}")
    return out


def test_a_valid_sequence_is_left_alone() -> None:
    msgs = [Message.user("q"), call("a", "b"), result("a"), result("b"), Message.assistant("done")]
    repaired, dropped = repair_tool_blocks(msgs)
    assert repaired == msgs and dropped == 0
    assert tool_protocol_violations(repaired) == []


def test_orphan_results_are_dropped() -> None:
    msgs = [Message.user("q"), result("ghost"), Message.assistant("hi"), result("late")]
    repaired, dropped = repair_tool_blocks(msgs)
    assert shape(repaired) == ["U:q", "A:hi"] and dropped == 2


def test_a_call_missing_a_result_is_dropped_with_its_other_results() -> None:
    msgs = [Message.user("q"), call("a", "b"), result("a"), Message.assistant("done")]
    repaired, dropped = repair_tool_blocks(msgs)
    assert shape(repaired) == ["U:q", "A:done"] and dropped == 2
    assert tool_protocol_violations(repaired) == []


def test_a_user_message_steered_between_call_and_result_moves_after_the_block() -> None:
    msgs = [Message.user("q"), call("a"), Message.user("also this"), result("a")]
    repaired, dropped = repair_tool_blocks(msgs)
    assert shape(repaired) == ["U:q", "A:a", "T:a", "U:also this"] and dropped == 0


def test_parallel_results_are_put_in_call_order() -> None:
    msgs = [Message.user("q"), call("a", "b", "c"), result("c"), result("a"), result("b")]
    repaired, _ = repair_tool_blocks(msgs)
    assert shape(repaired) == ["U:q", "A:a,b,c", "T:a", "T:b", "T:c"]


def test_duplicate_results_and_duplicate_call_ids_are_dropped() -> None:
    dup_result = [Message.user("q"), call("a"), result("a", "one"), result("a", "two")]
    repaired, dropped = repair_tool_blocks(dup_result)
    assert shape(repaired) == ["U:q", "A:a", "T:a"] and repaired[2].text == "one" and dropped == 1
    dup_call = [Message.user("q"), call("a", "a"), result("a"), result("a")]
    repaired, dropped = repair_tool_blocks(dup_call)
    assert shape(repaired) == ["U:q"] and dropped == 3


def test_reused_call_ids_pair_with_their_own_round() -> None:
    msgs = [Message.user("q"), call("call_0"), result("call_0", "r1"), call("call_0"), result("call_0", "r2")]
    repaired, _ = repair_tool_blocks(msgs)
    assert shape(repaired) == ["U:q", "A:call_0", "T:call_0", "A:call_0", "T:call_0"]
    assert [m.text for m in repaired if m.role == "tool"] == ["r1", "r2"]
    # The first round lost its result: its call must not steal the second round's result.
    broken = [Message.user("q"), call("call_0"), call("call_0"), result("call_0", "r2")]
    repaired, dropped = repair_tool_blocks(broken)
    assert shape(repaired) == ["U:q", "A:call_0", "T:call_0"] and dropped == 1


def test_a_result_before_its_call_is_an_orphan() -> None:
    msgs = [Message.user("q"), result("a"), call("a")]
    repaired, dropped = repair_tool_blocks(msgs)
    assert shape(repaired) == ["U:q"] and dropped == 2


def test_empty_assistant_messages_are_dropped() -> None:
    repaired, dropped = repair_tool_blocks([Message.user("q"), Message.assistant(""), Message.assistant("x")])
    assert shape(repaired) == ["U:q", "A:x"] and dropped == 1


def test_protocol_violations_are_reported() -> None:
    assert tool_protocol_violations([Message.user("q"), result("a")])
    assert tool_protocol_violations([call("a"), Message.user("q"), result("a")])
    assert tool_protocol_violations([call("a", "b"), result("b"), result("a")])
    assert tool_protocol_violations([call("a"), result("a"), result("a")])
    assert tool_protocol_violations([call("a")])
    assert tool_protocol_violations([call("a", "a"), result("a"), result("a")])
    assert tool_protocol_violations([Message(role="user", content=(), tool_call_id="x")])
    assert tool_protocol_violations([call("a"), result("a")]) == []


def test_turns_whose_start_was_cut_are_dropped_whole() -> None:
    def stamped(m: Message, turn: str, start: bool) -> Message:
        m.turn_id, m.turn_start = turn, start
        return m

    msgs = [
        stamped(result("a"), "t1", False),
        stamped(Message.assistant("x"), "t1", False),
        stamped(Message.user("q2"), "t2", True),
        stamped(Message.assistant("y"), "t2", False),
        stamped(Message.assistant("late t1"), "t1", False),
    ]
    turns, dropped = group_turns(msgs)
    assert [[m.text for m in t] for t in turns] == [["q2", "y"]] and dropped == 3


def test_alternation_groups_merge_tool_results_and_steered_users() -> None:
    msgs = [
        Message.user("q"),
        Message.user("more"),
        call("a", "b"),
        result("a"),
        result("b"),
        Message.user("steered"),
        Message.assistant("answer"),
        Message.assistant("more answer"),
    ]
    groups = alternation_groups(msgs)
    assert [(role, len(ms)) for role, ms in groups] == [("user", 2), ("assistant", 1), ("user", 3), ("assistant", 2)]
    assert [m.tool_call_id for m in groups[2][1][:2]] == ["a", "b"]
    assert alternation_violations(msgs) == []
    assert alternation_violations([Message.assistant("hi"), Message.user("q")]) == [
        "the first message is not from the user"
    ]


def test_flattening_turns_tool_blocks_into_text() -> None:
    msgs = [
        Message.user("q"),
        Message.assistant("checking", tool_calls=[ToolCall("a", "clock", '{"tz":"UTC"}')]),
        Message.tool_result("a", "12:00"),
        Message.tool_result("b", "bad", is_error=True),
    ]
    flat = flatten_tool_messages(msgs, lambda m: 42)
    assert [m.role for m in flat] == ["user", "assistant", "user", "user"]
    assert not any(m.tool_calls or m.tool_call_id for m in flat)
    assert '[called tool clock with arguments {"tz":"UTC"}]' in flat[1].text
    assert flat[2].text.startswith("[result of tool clock]") and flat[2].text.endswith("12:00")
    assert flat[3].text.startswith("[error from tool a tool]")
    assert [m.token_count for m in flat[1:]] == [42, 42, 42] and flat[0].token_count is None
