"""What the bench runs: upstream answer profiles, the scenario matrix, and the quick/full plans."""

from __future__ import annotations

from dataclasses import dataclass

from bench.upstream import Profile

SHORT = Profile("short", tokens=16, chunks=16, delay_s=0.0)  # non-streaming short answers
S256 = Profile("s256", tokens=256, chunks=256, delay_s=0.0)  # streaming 256-chunk answers


def slow_profile(seconds: float, delay_ms: int = 500) -> Profile:
    """A slow stream lasting about ``seconds`` (for holding many streams open)."""
    return Profile("slow", tokens=int(seconds * 1000 / delay_ms), chunks=int(seconds * 1000 / delay_ms), delay_s=delay_ms / 1000)


def profile_arg(p: Profile) -> str:
    return f"{p.name}:{p.tokens}:{p.chunks}:{int(p.delay_s * 1000)}"


@dataclass(frozen=True)
class Scenario:
    """One load shape, run against every target in turn."""

    stream: bool
    concurrency: int
    sessions: bool  # True: each virtual user reuses its own X-BMO-Session-Id
    duration_s: float
    warmup_s: float
    max_requests: int

    @property
    def profile(self) -> Profile:
        return S256 if self.stream else SHORT

    @property
    def name(self) -> str:
        kind = "stream256" if self.stream else "nonstream"
        return f"{kind}-c{self.concurrency}-{'session' if self.sessions else 'stateless'}"


@dataclass(frozen=True)
class Plan:
    """Everything one bench mode does."""

    name: str
    scenarios: list[Scenario]
    ledger_pair: Scenario  # run on bmo and bmo-noledger, alternating
    ledger_rounds: int
    hold_streams: int
    hold_seconds: float
    hold_ramp_s: float
    profile_seconds: float


def quick_plan() -> Plan:
    d, w, n = 2.0, 0.5, 20_000
    return Plan(
        name="quick",
        scenarios=[
            Scenario(False, 1, False, d, w, n),
            Scenario(False, 16, False, d, w, n),
            Scenario(False, 64, False, d, w, n),
            Scenario(False, 16, True, d, w, n),
            Scenario(True, 16, False, d, w, n),
            Scenario(True, 16, True, d, w, n),
        ],
        ledger_pair=Scenario(False, 64, False, d, w, n),
        ledger_rounds=2,  # on, off, off, on: one round alone mostly measures which instance ran first
        hold_streams=1000,
        hold_seconds=12.0,
        hold_ramp_s=3.0,
        profile_seconds=0.0,  # quick mode does not profile unless asked (--profile)
    )


def full_plan() -> Plan:
    d, w, n = 5.0, 1.0, 50_000
    scenarios = [
        Scenario(stream, c, sessions, d, w, n)
        for stream in (False, True)
        for sessions in (False, True)
        for c in (1, 16, 64, 256)
    ]
    return Plan(
        name="full",
        scenarios=scenarios,
        ledger_pair=Scenario(False, 64, False, d, w, n),
        ledger_rounds=2,
        hold_streams=1000,
        hold_seconds=30.0,
        hold_ramp_s=5.0,
        profile_seconds=10.0,
    )
