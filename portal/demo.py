"""Demo data: a synthetic 45-person team in the middle of its 10-week plan, and the loader behind
`manage.py load_demo`.

The figures and the plan follow the team's public 2024 report (see the shared DOMAIN.md); every person
is invented. Plan dates are written as 2024 "MM-DD" strings and moved by whole weeks so that the day
the demo is loaded falls in week 7 of the plan (the week of Monday 2024-07-15): the demo looks alive
whenever it is loaded, and weekly meetings (Saturday all-hands, Friday post-training) keep their weekday.

Loading is idempotent. Users, members, memberships, subteams, milestones and tasks are upserted in bulk,
keyed on usernames, slugs and (subteam, title). Goals are rebuilt on every load through
`services.create_goal` / `services.update_goal`, so their revision history is recorded the normal way
and its dates follow the shift; a rebuilt goal keeps its place (same count, same revisions) but not
its id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.db.models import ForeignKey, Model, Q
from django.utils import timezone

from portal import services
from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task

DEFAULT_PASSWORD = "demo"  # noqa: S105 - the documented demo password, overridden by DEMO_PASSWORD
PLAN_YEAR = 2024
PLAN_START = dt.date(2024, 6, 1)
PLAN_END = dt.date(2024, 8, 9)
PLAN_EXTENDED_END = dt.date(2024, 8, 12)
# "Today" of the demo story: Monday of week 7 of 10. A load on any day maps that day into this week.
PLAN_TODAY = dt.date(2024, 7, 15)
# The one milestone that is deliberately past and not done, so the overview has something overdue.
OVERDUE_MILESTONE = "Multimodal prototype demo (LLM + image encoder)"

LEAD = Membership.Role.LEAD
MEMBER = Membership.Role.MEMBER
TODO = Task.Status.TODO
DOING = Task.Status.DOING
BLOCKED = Task.Status.BLOCKED
DONE = Task.Status.DONE
LOW = Task.Priority.LOW
NORMAL = Task.Priority.NORMAL
HIGH = Task.Priority.HIGH
URGENT = Task.Priority.URGENT
ON_TRACK = Goal.Status.ON_TRACK
AT_RISK = Goal.Status.AT_RISK
ACHIEVED = Goal.Status.ACHIEVED
DROPPED = Goal.Status.DROPPED


# --- dates ---------------------------------------------------------------------------------------------


_PLAN_DATE_IN_TEXT = re.compile(r"\{(\d\d-\d\d)\}")


def plan_shift(today: dt.date | None = None) -> dt.timedelta:
    """Whole weeks to add to the plan's 2024 dates so that `today` falls in the week of PLAN_TODAY."""
    today = today or timezone.localdate()
    return dt.timedelta(weeks=(today - PLAN_TODAY).days // 7)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The plan's calendar moved to a real `today`."""

    today: dt.date
    shift: dt.timedelta

    @classmethod
    def for_today(cls, today: dt.date | None = None) -> Plan:
        today = today or timezone.localdate()
        return cls(today=today, shift=plan_shift(today))

    @property
    def plan_today(self) -> dt.date:
        """The plan date (2024) that corresponds to the real today: one of 07-15..07-21."""
        return self.today - self.shift

    @staticmethod
    def plan_date(md: str) -> dt.date:
        month, day = md.split("-")
        return dt.date(PLAN_YEAR, int(month), int(day))

    def day(self, md: str) -> dt.date:
        """A plan date ("MM-DD" of 2024) moved to the real calendar."""
        return self.plan_date(md) + self.shift

    def at(self, md: str, hour: int = 21, minute: int = 0) -> dt.datetime:
        """A moment on a plan date in the portal's time zone (volunteers mostly work evenings)."""
        naive = dt.datetime.combine(self.day(md), dt.time(hour, minute))
        return timezone.make_aware(naive, timezone.get_current_timezone())

    def is_past(self, md: str) -> bool:
        return self.plan_date(md) < self.plan_today

    def text(self, prose: str) -> str:
        """Prose with its "{MM-DD}" plan dates moved like every other date, e.g. "since {07-10}"."""
        return _PLAN_DATE_IN_TEXT.sub(lambda match: f"{self.day(match.group(1)):%m-%d}", prose)


# --- the team ------------------------------------------------------------------------------------------
# The tables below are kept one row per item (`fmt: off`): they read and diff better as tables.


@dataclasses.dataclass(frozen=True)
class SubteamSpec:
    slug: str
    name: str
    name_ja: str
    slack_channel: str
    purpose: str
    status_note: str
    is_management: bool = False


# fmt: off
SUBTEAMS: tuple[SubteamSpec, ...] = (
    SubteamSpec(
        "management", "Management", "運営チーム", "#team-management",
        "Sets goals and strategy, allocates GPUs and people, runs the Thursday management meeting and the "
        "Saturday all-hands, keeps the plan, the records and the cluster rules in one place, and manages the "
        "GitHub and Hugging Face organisations and access rights.",
        "Week 7 of 10. Planning the final push; 3-day extension granted (ends {08-12}).",
        is_management=True,
    ),
    SubteamSpec(
        "pretrain-data", "Pretraining data", "事前学習データ", "#team-pretrain-data",
        "Collects, deduplicates, filters and packs the Japanese and English pretraining corpus: first enough "
        "volume, then best-fit packing and quality.",
        "Third batch in ({07-07}); MinHash dedup and best-fit packing running, 760B of 800B tokens ready.",
    ),
    SubteamSpec(
        "instruction-data", "Instruction data", "指示データ", "#team-instruction-data",
        "Builds the SFT and DPO sets: conversational first, now code, math and reasoning.",
        "v3 (code, math, reasoning) in progress; license check of two sources blocked.",
    ),
    SubteamSpec(
        "synthetic-data", "Synthetic data", "合成データ", "#team-synthetic-data",
        "Generates instruction and Q&A data from the third pretraining batch with our own models.",
        "Generating from the third batch; waiting for GPU time now that the MoE run holds the nodes.",
    ),
    SubteamSpec(
        "post-training", "Fine-tuning / post-training", "事後学習（SFT・DPO）", "#team-sft",
        "SFT with TRL's SFTTrainer and DPO from configs (full and LoRA), evaluation on Japanese MT-Bench, "
        "written weekly reports for the Friday post-training meeting.",
        "8B full SFT + DPO at 7.03 on Japanese MT-Bench; preparing the recipe for the 8x8B MoE.",
    ),
    SubteamSpec(
        "moe", "MoE", "MoE", "#team-moe",
        "Trains the 8x8B mixture-of-experts model upcycled from our 8B after the dense ~38B run was stopped.",
        "8x8B training since {07-10}; tuning the expert-parallel layout, token budget at risk.",
    ),
    SubteamSpec(
        "merge", "Model merging", "モデルマージ", "#team-merge",
        "Merges SFT/DPO checkpoints (linear, TIES, DARE) and checks whether a merge beats the best single "
        "model.",
        "First merge sweep on 8B SFT checkpoints running.",
    ),
    SubteamSpec(
        "multimodal", "Multimodal", "マルチモーダル", "#team-multimodal",
        "Connects our LLM to an image encoder for Japanese visual question answering.",
        "Prototype slipped to {07-26}: projector training waits for GPUs.",
    ),
    SubteamSpec(
        "agent", "Agent", "エージェント", "#team-agent",
        "Function calling and tool use: data for the final SFT and a tool-use evaluation in the nightly run.",
        "Tool-use scenarios being written; eval harness half done.",
    ),
    SubteamSpec(
        "code", "Code", "コード", "#team-code",
        "Code data in the pretraining mix and the SFT sets, and a pass@1 code evaluation per checkpoint.",
        "Code eval harness ready; waiting for the first MoE checkpoint in Hugging Face format.",
    ),
    SubteamSpec(
        "tokenizer", "Tokenizer", "トークナイザー", "#team-tokenizer",
        "Started as an emergency team in week 1: chose and froze the vocabulary, runs the tokenisation "
        "rounds.",
        "Vocabulary frozen {06-21}; tokenising the third batch. Most of the emergency team moved to "
        "pretraining data.",
    ),
    SubteamSpec(
        "training-code", "Training code", "学習コード", "#team-training-code",
        "Started as an emergency team in week 1: training framework, throughput benchmarks, Slurm templates, "
        "the 8B and dense ~38B pretraining runs.",
        "8B done; dense ~38B stopped after a loss spike. Hardening restarts for the final push.",
    ),
)
# fmt: on


@dataclasses.dataclass(frozen=True)
class Stint:
    """A membership: subteam slug, role, plan start, plan end (None while it lasts)."""

    subteam: str
    role: str = MEMBER
    start: str = "06-01"
    end: str | None = None


@dataclasses.dataclass(frozen=True)
class Person:
    username: str
    display_name: str
    bio: str
    stints: tuple[Stint, ...]
    joined: str = "06-01"
    missing: tuple[str, ...] = ()  # onboarding steps not done yet (Member.ONBOARDING_FIELDS names)
    is_admin: bool = False

    @property
    def given(self) -> str:
        return self.display_name.split()[0]

    @property
    def family(self) -> str:
        return self.display_name.split()[-1]


def S(subteam: str, role: str = MEMBER, start: str = "06-01", end: str | None = None) -> Stint:
    return Stint(subteam, role, start, end)


# Every name is invented. 44 people plus the shared `admin` account make the team's 45 members.
# fmt: off
PEOPLE: tuple[Person, ...] = (
    Person("admin", "Admin", "Shared administrator account of the management team.",
           (S("management"),), joined="05-25", is_admin=True),
    Person("akinoshita", "Aoi Kinoshita", "Project manager; runs the Thursday management meeting.",
           (S("management", LEAD),), joined="05-25"),
    Person("dmorimoto", "Daichi Morimoto", "Accounts and onboarding; GitHub and Hugging Face org admin.",
           (S("management"),), joined="05-25"),
    Person("etsujimura", "Emi Tsujimura", "Runs the Friday post-training meeting and the weekly reports.",
           (S("management"), S("post-training", start="06-24"))),
    Person("khirose", "Kenta Hirose", "Cluster rules, the GPU lending list and Slurm reservations.",
           (S("management"), S("training-code"))),
    Person("snakagawa", "Sota Nakagawa", "Owns the pretraining corpus; dedup and packing.",
           (S("pretrain-data", LEAD),)),
    Person("yishikawa", "Yui Ishikawa", "Crawl ingestion and language ID.",
           (S("pretrain-data"),)),
    Person("togawa", "Takumi Ogawa", "Was on the tokenizer emergency team (weeks 1-3); now data packing.",
           (S("tokenizer", end="06-21"), S("pretrain-data", start="06-22"))),
    Person("mfujisaki", "Mio Fujisaki", "Was on the tokenizer emergency team (weeks 1-3); now quality filters.",
           (S("tokenizer", end="06-21"), S("pretrain-data", start="06-22"))),
    Person("rhamada", "Riku Hamada", "MinHash dedup at scale.",
           (S("pretrain-data"),)),
    Person("kshimizu", "Kaho Shimizu", "Picks documents for synthetic data from the third batch.",
           (S("pretrain-data"), S("synthetic-data", start="07-07"))),
    Person("ykudo", "Yamato Kudo", "Shared-disk housekeeping and data lineage.",
           (S("pretrain-data"),)),
    Person("hmatsuoka", "Hina Matsuoka", "Instruction data lead; style guide for answers.",
           (S("instruction-data", LEAD),)),
    Person("karai", "Kosei Arai", "Conversational data and dedup.",
           (S("instruction-data"),)),
    Person("suchida", "Sakura Uchida", "Math and reasoning data; synthetic prompt templates.",
           (S("instruction-data"), S("synthetic-data", start="07-01"))),
    Person("niwamoto", "Naoki Iwamoto", "License checks for data sources.",
           (S("instruction-data"),)),
    Person("ryoshikawa", "Rin Yoshikawa", "DPO preference data (prompt / chosen / rejected).",
           (S("instruction-data"), S("post-training", start="06-28"))),
    Person("ykanda", "Yuto Kanda", "Synthetic data lead; generation with vLLM.",
           (S("instruction-data", end="06-30"), S("synthetic-data", LEAD, start="07-01"))),
    Person("akoizumi", "Ayane Koizumi", "Joined mid-project; judge-model filtering of synthetic pairs.",
           (S("synthetic-data", start="07-01"),), joined="07-01", missing=("has_huggingface",)),
    Person("htsuchiya", "Haruki Tsuchiya", "Post-training lead: SFT and DPO recipes.",
           (S("post-training", LEAD, start="06-24"),)),
    Person("smaruyama", "Shun Maruyama", "TRL configs and the Japanese MT-Bench runner.",
           (S("post-training", start="06-24"),)),
    Person("nueda", "Nanami Ueda", "LoRA vs full SFT experiments.",
           (S("post-training", start="06-24"),)),
    Person("ksugimoto", "Kaito Sugimoto", "DPO runs; leads model merging.",
           (S("post-training", start="06-24"), S("merge", LEAD, start="07-08"))),
    Person("monishi", "Miyu Onishi", "Explored online RLHF; now the MoE SFT recipe.",
           (S("post-training", start="06-24"),)),
    Person("tnishimura", "Takeru Nishimura", "Ran the dense ~38B run; now leads the 8x8B MoE.",
           (S("training-code", end="07-05"), S("moe", LEAD, start="07-05"))),
    Person("ksakamoto", "Koharu Sakamoto", "Router and load-balancing loss.",
           (S("moe", start="07-05"),)),
    Person("hkubota", "Hayato Kubota", "Moved from training code to MoE with the upcycling work.",
           (S("training-code", end="07-05"), S("moe", start="07-05"))),
    Person("rhoshino", "Ryota Hoshino", "Expert parallelism; checkpoints and restarts.",
           (S("training-code"), S("moe", start="07-05"))),
    Person("yakiyama", "Yuna Akiyama", "Loss-spike monitoring and alerts.",
           (S("moe", start="07-05"),), joined="07-05", missing=("has_github",)),
    Person("amiyazaki", "Asuka Miyazaki", "Merge sweeps and evaluation.",
           (S("merge", start="07-08"),)),
    Person("tnoguchi", "Tsubasa Noguchi", "Joined mid-project; merging literature and MoE merges.",
           (S("merge", start="07-08"),), joined="07-06", missing=("has_wandb",)),
    Person("mkawabata", "Mei Kawabata", "Multimodal lead; image encoder and connector.",
           (S("multimodal", LEAD, start="06-24"),)),
    Person("siida", "Shota Iida", "Japanese image-caption data.",
           (S("multimodal", start="06-24"),)),
    Person("nyokoyama", "Natsuki Yokoyama", "VQA evaluation set.",
           (S("multimodal", start="06-24"),), missing=("has_wandb", "has_huggingface")),
    Person("kterada", "Kanon Terada", "Joined mid-project; prototype demo UI.",
           (S("multimodal", start="07-08"),), joined="07-08", missing=("has_cluster_account", "has_wandb")),
    Person("rokabe", "Ryusei Okabe", "Agent lead; function-calling format.",
           (S("agent", LEAD, start="07-01"),)),
    Person("hsakai", "Honoka Sakai", "Japanese tool-use scenarios.",
           (S("agent", start="07-01"),), missing=("has_cluster_account",)),
    Person("ymurata", "Yusei Murata", "Tool use and code evaluation.",
           (S("agent", start="07-01"), S("code", start="06-10"))),
    Person("mtakeda", "Minato Takeda", "Code lead; pass@1 harness.",
           (S("code", LEAD, start="06-10"),)),
    Person("ckondo", "Chihiro Kondo", "Joined mid-project; code instructions with Japanese docstrings.",
           (S("code", start="07-10"),), joined="07-10", missing=("has_wandb",)),
    Person("imasuda", "Itsuki Masuda", "Tokenizer lead since the week-1 emergency team.",
           (S("tokenizer", LEAD),)),
    Person("kaoki", "Kokona Aoki", "Tokenisation rounds and the tokenizer card.",
           (S("tokenizer"),)),
    Person("rfukuda", "Ryo Fukuda", "Tokenises each data batch; bridges tokenizer and data.",
           (S("tokenizer"), S("pretrain-data", start="06-22"))),
    Person("gozawa", "Genki Ozawa", "Training code lead; Megatron patches and throughput.",
           (S("training-code", LEAD),)),
    Person("dhattori", "Daisuke Hattori", "Slurm sbatch templates and resume-from-checkpoint.",
           (S("training-code"),)),
)
# fmt: on


# --- milestones ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MilestoneSpec:
    subteam: str | None
    title: str
    date: str
    description: str = ""


# fmt: off
MILESTONES: tuple[MilestoneSpec, ...] = (
    MilestoneSpec(None, "Development window opens", "06-01",
                  "Cluster access for everyone: 8 x H100 nodes, Slurm, 30 GB home quota, 45 TB per subteam."),
    MilestoneSpec("training-code", "Architecture and training environment chosen", "06-07",
                  "Llama-style with Transformer Engine: 2,520 tokens/GPU/s, 430 TFLOPS on 2 nodes."),
    MilestoneSpec("pretrain-data", "First batch of pretraining data in", "06-10"),
    MilestoneSpec("tokenizer", "Tokenisation round 1", "06-16"),
    MilestoneSpec("tokenizer", "Tokenisation round 2; vocabulary frozen", "06-21"),
    MilestoneSpec(None, "8B pretraining starts", "06-21"),
    MilestoneSpec("pretrain-data", "Second batch of pretraining data in", "06-24"),
    MilestoneSpec(None, "Fine-tuning / post-training starts", "06-28"),
    MilestoneSpec(None, "Dense ~38B stopped; switch to 8x8B MoE by upcycling", "07-05",
                  "Decided at the management meeting after the loss spike."),
    MilestoneSpec("pretrain-data", "Third batch of pretraining data in", "07-07"),
    MilestoneSpec("synthetic-data", "Synthetic data generation starts from the third batch", "07-08"),
    MilestoneSpec(None, "MoE training starts (8x8B upcycled from the 8B)", "07-10"),
    MilestoneSpec("multimodal", OVERDUE_MILESTONE, "07-12",
                  "Slipped: projector training is waiting for GPUs (see the multimodal goal)."),
    MilestoneSpec(None, "All-hands: mid-project review", "07-13"),
    MilestoneSpec("pretrain-data", "Third batch deduplicated and packed", "07-17"),
    MilestoneSpec("post-training", "8B SFT/DPO submitted to Nejumi Leaderboard Neo", "07-19"),
    MilestoneSpec(None, "All-hands: plan the final push", "07-20"),
    MilestoneSpec("instruction-data", "Instruction data v3: code, math and reasoning", "07-22"),
    MilestoneSpec("agent", "Agent tool-use eval in the nightly run", "07-24"),
    MilestoneSpec("code", "Code eval on every MoE checkpoint", "07-26"),
    MilestoneSpec(None, "Final push starts: data, pretraining, SFT and DPO as one team", "07-27"),
    MilestoneSpec("moe", "8x8B MoE pretraining complete", "08-02"),
    MilestoneSpec("post-training", "Final SFT + DPO on the 8x8B MoE", "08-05"),
    MilestoneSpec("merge", "Merge candidates evaluated on Japanese MT-Bench", "08-07"),
    MilestoneSpec(None, "Development window ends", "08-09"),
    MilestoneSpec(None, "Extension ends: final model and report released", "08-12"),
)
# fmt: on


# --- goals -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Revision:
    """A later change to a goal; `author` None with a `source` is an automatic change."""

    on: str
    author: str | None
    changes: Mapping[str, Any]
    reason: str
    source: str = ""


@dataclasses.dataclass(frozen=True)
class GoalSpec:
    key: str
    subteam: str | None
    author: str
    created: str
    fields: Mapping[str, Any]
    reason: str = ""
    revisions: tuple[Revision, ...] = ()

    @property
    def titles(self) -> set[str]:
        """Every title the goal has had, to find it again on the next load."""
        titles = {self.fields["title"]}
        titles.update(r.changes["title"] for r in self.revisions if "title" in r.changes)
        return titles


JMT = "jmt_bench.avg"

# fmt: off
GOALS: tuple[GoalSpec, ...] = (
    GoalSpec(
        "project", None, "akinoshita", "06-01",
        {"title": "Build the best ~50B-class LLM possible under the cluster's conditions",
         "target": "A ~50B-class Japanese LLM trained within the 10-week window on the production cluster "
                   "(8 x H100 nodes, Slurm) and released on Hugging Face.",
         "start_date": "06-01", "due_date": "08-09"},
        reason="Kick-off goal agreed at the first all-hands.",
        revisions=(
            Revision(
                "06-29", "akinoshita",
                {"title": "Top score on Japanese MT-Bench",
                 "target": "Our final model reaches the top score on Japanese MT-Bench (judge gpt-4, "
                           "8 categories): at least the 7.81 of the strongest external reference model.",
                 "metric_name": JMT, "metric_comparison": ">=", "metric_target": 7.8,
                 "metric_baseline": 3.12, "metric_current": 3.12},
                "Focus the team on one measurable target: 'the best ~50B-class LLM' meant something "
                "different to every subteam. Japanese MT-Bench is what we will be compared on, so every "
                "subteam's work should move that number. Baseline: the first LoRA SFT on the 8B base "
                "(3.119).",
            ),
            Revision(
                "07-12", None, {"metric_current": 7.03},
                "New best result: 8B full SFT + DPO scored 7.03 on Japanese MT-Bench (judge gpt-4).",
                source="jmt-bench: 8b-sft-dpo-v2 (judge gpt-4)",
            ),
            Revision(
                "07-13", "akinoshita", {"due_date": "08-12"},
                "The cluster operator granted a 3-day extension of the development window; the final "
                "evaluation and the release move into it.",
            ),
        ),
    ),
    GoalSpec(
        "release", None, "akinoshita", "07-13",
        {"title": "Release the final model, its card and the project report on Hugging Face",
         "target": "Weights, tokenizer and model card public on the team's Hugging Face organisation; "
                   "a report with the MT-Bench and Nejumi Leaderboard Neo results.",
         "start_date": "07-29", "due_date": "08-12"},
        reason="Added at the mid-project review so that the release is planned, not improvised.",
    ),
    GoalSpec(
        "onboarding", "management", "dmorimoto", "06-01",
        {"title": "Everyone onboarded: cluster, GitHub, Hugging Face, W&B and Slack",
         "target": "Every member has done all five onboarding steps and read the cluster rules "
                   "(no drained nodes, check the GPU lending list first).",
         "start_date": "06-01", "due_date": "06-14"},
        revisions=(
            Revision(
                "07-11", "dmorimoto", {"due_date": "07-26", "status": AT_RISK},
                "New volunteers joined mid-project and several people still lack W&B or a cluster account, "
                "the steps the announcements kept missing. Chasing them one by one.",
            ),
        ),
    ),
    GoalSpec(
        "data-volume", "pretrain-data", "snakagawa", "06-01",
        {"title": "Enough clean pretraining data for the main run",
         "target": "Deduplicated, filtered and packed tokens on the shared disk before the main run "
                   "needs them.",
         "metric_name": "data.tokens_ready_b", "metric_target": 500.0, "metric_baseline": 0.0,
         "metric_current": 0.0, "start_date": "06-01", "due_date": "07-07"},
        revisions=(
            Revision(
                "06-12", "snakagawa", {"metric_target": 800.0, "metric_current": 180.0},
                "Architecture chosen: the projections are 800-1,500B tokens in the window (820B Llama-style "
                "35B, 800B DeepSeek-V2, 1,500B Llama-style with Transformer Engine). Data must not be the "
                "bottleneck.",
            ),
            Revision(
                "07-08", "snakagawa", {"due_date": "07-21", "status": AT_RISK, "metric_current": 760.0},
                "The third batch arrived on {07-07}, but MinHash dedup and best-fit packing are still running: "
                "760B of 800B tokens ready.",
            ),
        ),
    ),
    GoalSpec(
        "instruct-v1", "instruction-data", "hmatsuoka", "06-10",
        {"title": "Conversational instruction set for the first SFT",
         "target": "100k deduplicated conversational examples in the SFT format.",
         "metric_name": "sft.examples_k", "metric_target": 100.0, "metric_current": 100.0,
         "start_date": "06-10", "due_date": "06-28", "status": ACHIEVED},
    ),
    GoalSpec(
        "instruct-v3", "instruction-data", "hmatsuoka", "07-01",
        {"title": "Instruction data v3",
         "target": "A second conversational set, twice the size of v1.",
         "start_date": "07-01", "due_date": "07-22"},
        revisions=(
            Revision(
                "07-05", "hmatsuoka",
                {"title": "Instruction data v3: code, math and reasoning",
                 "target": "Code, math and step-by-step reasoning examples for the final SFT, "
                           "licenses checked."},
                "Data strategy: conversational data no longer limits us; coding, math and reasoning are our "
                "lowest MT-Bench categories.",
            ),
        ),
    ),
    GoalSpec(
        "synthetic", "synthetic-data", "ykanda", "07-01",
        {"title": "200k synthetic instruction pairs from the third batch",
         "metric_name": "synth.pairs_k", "metric_target": 200.0, "metric_baseline": 0.0,
         "metric_current": 45.0, "start_date": "07-07", "due_date": "07-31"},
    ),
    GoalSpec(
        "sft-pipeline", "post-training", "htsuchiya", "06-24",
        {"title": "SFT/DPO pipeline working; LoRA vs full SFT compared",
         "target": "SFT (TRL SFTTrainer) and DPO run from a config; LoRA and full SFT compared on the 8B "
                   "base with the 100k set.",
         "start_date": "06-28", "due_date": "07-05"},
        revisions=(
            Revision(
                "07-04", "htsuchiya", {"status": ACHIEVED},
                "Both trainers run from configs. LoRA beat full SFT on the 100k set (3.119 vs 2.444); the "
                "SFT data was judged the likely cause, so next comes data quality, then full SFT again.",
            ),
        ),
    ),
    GoalSpec(
        "sft-8b", "post-training", "htsuchiya", "07-04",
        {"title": "8B SFT + DPO reaches 7.0 on Japanese MT-Bench",
         "metric_name": JMT, "metric_target": 7.0, "metric_baseline": 3.12, "metric_current": 7.03,
         "start_date": "07-05", "due_date": "07-12", "status": ACHIEVED},
    ),
    GoalSpec(
        "rlhf", "post-training", "htsuchiya", "06-28",
        {"title": "Online RLHF prototype",
         "target": "A reward model and an online RLHF loop on the 8B, compared with DPO.",
         "start_date": "07-01", "due_date": "07-26"},
        revisions=(
            Revision(
                "07-11", "htsuchiya", {"status": DROPPED},
                "Dropped for time: DPO already gives most of the gain and the MoE run needs the GPUs. "
                "What we learned is in the task's notes.",
            ),
        ),
    ),
    GoalSpec(
        "sft-moe", "post-training", "htsuchiya", "07-12",
        {"title": "Final SFT + DPO on the 8x8B MoE",
         "metric_name": JMT, "metric_target": 7.8, "metric_baseline": 7.03,
         "start_date": "07-20", "due_date": "08-09"},
    ),
    GoalSpec(
        "env", "training-code", "gozawa", "06-01",
        {"title": "Architecture and training environment chosen",
         "target": "Throughput of the candidates measured on 2 nodes; one architecture and framework chosen.",
         "start_date": "06-01", "due_date": "06-10", "status": ACHIEVED},
    ),
    GoalSpec(
        "pretrain-8b", "training-code", "gozawa", "06-14",
        {"title": "8B pretraining finished", "start_date": "06-21", "due_date": "07-08"},
        revisions=(
            Revision(
                "07-08", "gozawa", {"status": ACHIEVED},
                "Final 8B checkpoint saved and converted; it is the base for SFT and for the MoE upcycling.",
            ),
        ),
    ),
    GoalSpec(
        "dense-38b", "training-code", "tnishimura", "06-14",
        {"title": "Dense ~38B pretraining on ~800B tokens",
         "metric_name": "pretrain.tokens_b", "metric_target": 800.0, "metric_baseline": 0.0,
         "start_date": "06-21", "due_date": "08-05"},
        revisions=(
            Revision(
                "07-02", "tnishimura", {"status": AT_RISK, "metric_current": 210.0},
                "Loss spike mid-way through the run; rolled back to the last good checkpoint with a lower "
                "learning rate and lost two days.",
            ),
            Revision(
                "07-05", "gozawa", {"status": DROPPED},
                "The loss spiked again after the rollback and a restart would not finish in the window. "
                "Switching to an 8x8B MoE built by upcycling the finished 8B (see the MoE goal).",
            ),
        ),
    ),
    GoalSpec(
        "moe", "moe", "tnishimura", "07-05",
        {"title": "8x8B MoE upcycled from the 8B, trained on 400B tokens",
         "metric_name": "moe.tokens_b", "metric_target": 400.0, "metric_baseline": 0.0,
         "metric_current": 38.0, "start_date": "07-05", "due_date": "08-02"},
        reason="Replaces the dropped dense ~38B goal after the loss spike.",
        revisions=(
            Revision(
                "07-12", "tnishimura", {"status": AT_RISK},
                "Throughput on 18 nodes is well below the small-scale numbers (our DeepSeek-V2 test fell "
                "from 450 TFLOPS on 3 nodes to 230 on 18); at this rate 400B tokens do not fit before {08-02}.",
            ),
        ),
    ),
    GoalSpec(
        "merge", "merge", "ksugimoto", "07-08",
        {"title": "A merged model beats the best single SFT/DPO model",
         "metric_name": JMT, "metric_comparison": ">", "metric_target": 7.03, "metric_baseline": 6.5,
         "metric_current": 6.95, "start_date": "07-08", "due_date": "08-07"},
    ),
    GoalSpec(
        "multimodal", "multimodal", "mkawabata", "06-24",
        {"title": "Multimodal prototype: Japanese visual question answering",
         "target": "Our LLM with an image encoder answers Japanese questions about images in a live demo.",
         "start_date": "06-24", "due_date": "07-12"},
        revisions=(
            Revision(
                "07-10", "mkawabata", {"due_date": "07-26", "status": AT_RISK},
                "Projector pretraining needs GPUs that went to the MoE run on {07-10}; the demo moves to "
                "{07-26}.",
            ),
        ),
    ),
    GoalSpec(
        "agent", "agent", "rokabe", "07-01",
        {"title": "Tool-use benchmark in the nightly evaluation",
         "target": "50 Japanese tool-use scenarios scored automatically on every new checkpoint.",
         "start_date": "07-01", "due_date": "07-24"},
    ),
    GoalSpec(
        "code", "code", "mtakeda", "06-10",
        {"title": "Code pass@1 tracked on every checkpoint",
         "metric_name": "code.pass_at_1", "metric_target": 0.4, "metric_baseline": 0.12,
         "metric_current": 0.31, "start_date": "06-10", "due_date": "07-26"},
    ),
    GoalSpec(
        "tokenizer", "tokenizer", "imasuda", "06-01",
        {"title": "Tokenizer finalised for the main runs",
         "target": "Japanese-aware vocabulary chosen, tested on held-out text and frozen before 8B "
                   "pretraining.",
         "start_date": "06-01", "due_date": "06-21"},
        revisions=(
            Revision(
                "06-21", "imasuda", {"status": ACHIEVED},
                "Second tokenisation round finished; vocabulary frozen for the 8B run.",
            ),
        ),
    ),
)
# fmt: on


# --- tasks -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    subteam: str
    title: str
    status: str
    priority: int
    assignees: tuple[str, ...]
    start: str
    due: str
    goal: str | None = None
    learnings: str = ""
    description: str = ""


def T(
    subteam: str,
    title: str,
    status: str,
    priority: int,
    assignees: str,
    start: str,
    due: str,
    goal: str | None = None,
    learnings: str = "",
    description: str = "",
) -> TaskSpec:
    """A task row: `assignees` is a space-separated list of usernames, the first is the creator."""
    return TaskSpec(
        subteam, title, status, priority, tuple(assignees.split()), start, due, goal, learnings, description
    )


# fmt: off
TASKS: tuple[TaskSpec, ...] = (
    # management
    T("management", "Collect cluster, GitHub and W&B accounts from every volunteer", DONE, HIGH,
      "dmorimoto", "06-01", "06-07", "onboarding",
      learnings="One form asking for every handle at once beat three separate announcements. W&B was the "
                "step people missed most, so the portal now shows an onboarding checklist."),
    T("management", "Write the production cluster rules in one place", DONE, HIGH,
      "khirose etsujimura", "06-03", "06-08",
      learnings="Nodes went into drain twice in week 1 (jobs filling the 30 GB home quota). Link the rules "
                "from every onboarding message and pin them in each subteam channel.",
      description="Drain, GPU lending list, home quota, 45 TB per subteam, sbatch etiquette."),
    T("management", "Ask the cluster operator to extend the development window", DONE, URGENT,
      "akinoshita", "07-08", "07-13", "project",
      learnings="Granted: 3 more days, to {08-12}. Ask early, with a plan for the extra days."),
    T("management", "Weekly all-hands agenda and notes (Saturday)", DOING, NORMAL,
      "akinoshita etsujimura", "06-01", "08-10"),
    T("management", "Reconcile the GPU lending list with Slurm reservations", DOING, HIGH,
      "khirose", "07-08", "07-18"),
    T("management", "Chase missing W&B and cluster accounts of mid-project newcomers", TODO, HIGH,
      "dmorimoto admin", "07-15", "07-19", "onboarding"),
    T("management", "Plan the final push: who moves where for the last weeks", TODO, URGENT,
      "akinoshita", "07-16", "07-25", "project"),
    # pretraining data
    T("pretrain-data", "First batch: exact dedup, language ID and shards", DONE, URGENT,
      "snakagawa yishikawa rhamada", "06-01", "06-10", "data-volume",
      learnings="Exact dedup before MinHash: running MinHash on the undeduplicated crawl cost about twice "
                "the CPU hours for the same result."),
    T("pretrain-data", "Second batch ingest", DONE, HIGH,
      "yishikawa ykudo", "06-11", "06-24", "data-volume"),
    T("pretrain-data", "Third batch ingest", DONE, HIGH,
      "yishikawa togawa", "06-25", "07-07", "data-volume"),
    T("pretrain-data", "Token count report per source and language", DONE, NORMAL,
      "rfukuda", "07-01", "07-08",
      learnings="Count tokens with the frozen tokenizer, not words: Japanese word counts under-estimated "
                "the corpus by a third."),
    T("pretrain-data", "MinHash dedup of the third batch", DOING, URGENT,
      "rhamada rfukuda", "07-07", "07-17", "data-volume"),
    T("pretrain-data", "Best-fit packing for the main-run shards", DOING, HIGH,
      "togawa snakagawa", "07-09", "07-19", "data-volume",
      description="Replace concatenate-and-chunk with best-fit packing: fewer truncated documents."),
    T("pretrain-data", "Quality filter: perplexity scoring on a 1% sample", TODO, NORMAL,
      "mfujisaki", "07-16", "07-26"),
    T("pretrain-data", "Move the raw crawl off the subteam disk (45 TB, 92% full)", BLOCKED, HIGH,
      "ykudo", "07-10", "07-16",
      description="Blocked: waiting for the archive bucket from management."),
    T("pretrain-data", "Document the lineage of each data batch", TODO, LOW,
      "ykudo mfujisaki", "07-22", "08-02"),
    # instruction data
    T("instruction-data", "Conversational instruction set v1 (100k examples)", DONE, URGENT,
      "hmatsuoka karai", "06-10", "06-27", "instruct-v1",
      learnings="Volume was not the problem: many templated, short answers. LoRA hid it, full SFT exposed "
                "it (2.444 vs 3.119 on MT-Bench)."),
    T("instruction-data", "Dedup and length filter for v1", DONE, HIGH,
      "karai", "06-20", "06-27", "instruct-v1"),
    T("instruction-data", "v2: rewrite weak answers, drop templated ones", DONE, HIGH,
      "hmatsuoka niwamoto", "06-30", "07-09",
      learnings="Rewriting the worst 20% of answers helped more than adding 50k new examples."),
    T("instruction-data", "v3: code instructions", DOING, HIGH,
      "karai ryoshikawa", "07-08", "07-19", "instruct-v3"),
    T("instruction-data", "v3: math and reasoning with step-by-step answers", DOING, HIGH,
      "suchida", "07-08", "07-22", "instruct-v3"),
    T("instruction-data", "License check for every source in v3", BLOCKED, URGENT,
      "niwamoto", "07-10", "07-18", "instruct-v3",
      description="Blocked: two sources have no clear license; asked their maintainers, no answer yet."),
    T("instruction-data", "DPO pairs in prompt / chosen / rejected format", TODO, NORMAL,
      "ryoshikawa", "07-16", "07-24"),
    # synthetic data
    T("synthetic-data", "Prompt templates and a Japanese style guide for generation", DONE, HIGH,
      "suchida ykanda", "07-01", "07-08", "synthetic",
      learnings="Asking for answers 'as a Japanese textbook would explain it' cut English code-switching "
                "to a small fraction of samples."),
    T("synthetic-data", "Batch generation with vLLM on 2 nodes", DONE, HIGH,
      "ykanda", "07-05", "07-10", "synthetic",
      learnings="Sorting prompts by length before batching kept the GPUs busy."),
    T("synthetic-data", "Generate Q&A pairs from third-batch documents", DOING, URGENT,
      "ykanda kshimizu", "07-08", "07-24", "synthetic"),
    T("synthetic-data", "Decontaminate against MT-Bench questions", DOING, HIGH,
      "kshimizu", "07-12", "07-19", "synthetic"),
    T("synthetic-data", "GPU time for generation after the MoE start", BLOCKED, HIGH,
      "ykanda", "07-10", "07-19",
      description="Blocked: no lending slot free since the MoE run took the nodes on {07-10}."),
    T("synthetic-data", "Filter synthetic pairs with a judge model", TODO, NORMAL,
      "akoizumi", "07-18", "07-28", "synthetic"),
    T("synthetic-data", "Persona-based multi-turn dialogues", TODO, LOW,
      "akoizumi suchida", "07-22", "07-31"),
    # post-training
    T("post-training", "SFT from a config with TRL's SFTTrainer", DONE, URGENT,
      "smaruyama", "06-24", "06-30", "sft-pipeline",
      learnings="Hyperparameters, model and data in one YAML made runs reproducible; every W&B run links "
                "its config."),
    T("post-training", "DPO from a config (prompt / chosen / rejected)", DONE, HIGH,
      "ksugimoto ryoshikawa", "06-28", "07-05", "sft-pipeline"),
    T("post-training", "LoRA vs full SFT on the 8B base with the 100k set", DONE, HIGH,
      "nueda", "06-28", "07-03", "sft-pipeline",
      learnings="LoRA beat full SFT on 100k examples (avg 3.12 vs 2.44); the SFT data was the likely cause, "
                "not the method. Full SFT is worth trying again once the data is clean."),
    T("post-training", "Japanese MT-Bench runner (GPT-4 / GPT-4o judge)", DONE, HIGH,
      "smaruyama", "07-01", "07-06",
      learnings="Always store the judge model with the score: results judged by GPT-4 and GPT-4o are not "
                "comparable, and a mixed table misled us once."),
    T("post-training", "Full SFT + DPO on the 8B with instruction set v2", DONE, URGENT,
      "htsuchiya ksugimoto", "07-05", "07-12", "sft-8b",
      learnings="7.03 on Japanese MT-Bench (judge gpt-4), up from 3.12: clean data plus DPO did it. Math is "
                "still the weakest category."),
    T("post-training", "Online RLHF: reward model and PPO loop", DONE, NORMAL,
      "monishi", "07-01", "07-11", "rlhf",
      learnings="Explored and dropped for time. The reward model trained fine; the online loop needed far "
                "more GPU hours than DPO for no clear gain at our scale."),
    T("post-training", "Submit the 8B SFT/DPO to Nejumi Leaderboard Neo", TODO, HIGH,
      "smaruyama", "07-15", "07-19", "sft-8b"),
    T("post-training", "SFT/DPO recipe for the 8x8B MoE", DOING, URGENT,
      "htsuchiya monishi", "07-12", "07-26", "sft-moe"),
    T("post-training", "Weekly post-training report (Friday)", DOING, LOW,
      "etsujimura", "06-28", "08-09"),
    T("post-training", "Convert MoE checkpoints to Hugging Face format for eval", BLOCKED, HIGH,
      "nueda", "07-12", "07-19", "sft-moe",
      description="Blocked: waiting for the MoE checkpoint layout to settle after the layout tuning."),
    # MoE
    T("moe", "Upcycle the 8B into 8x8B (copy FFNs into experts, new router)", DONE, URGENT,
      "tnishimura hkubota", "07-05", "07-09", "moe",
      learnings="Add small noise to the copied experts: identical experts let the router collapse onto two "
                "experts in the first few hundred steps."),
    T("moe", "Launch MoE training on 18 nodes", DONE, URGENT,
      "tnishimura rhoshino", "07-09", "07-10", "moe"),
    T("moe", "Checkpoint every 2 hours, keep the last three", DONE, HIGH,
      "rhoshino", "07-10", "07-11",
      learnings="Keep only the last three full checkpoints or the 45 TB subteam disk fills within days; "
                "copy milestone checkpoints elsewhere."),
    T("moe", "Slack alert on loss and grad-norm spikes", DONE, NORMAL,
      "yakiyama", "07-10", "07-12",
      learnings="Alert on grad-norm jumps, not only on loss: in the dense run the norm moved a few hundred "
                "steps before the loss did."),
    T("moe", "Tune the expert-parallel layout", DOING, URGENT,
      "rhoshino hkubota", "07-11", "07-19", "moe"),
    T("moe", "Load-balancing loss sweep", DOING, HIGH,
      "ksakamoto", "07-12", "07-20", "moe"),
    T("moe", "Re-plan the MoE token budget", TODO, HIGH,
      "tnishimura", "07-16", "07-19", "moe"),
    # merge
    T("merge", "Merge toolkit set up (linear, TIES, DARE)", DONE, HIGH,
      "amiyazaki", "07-08", "07-12", "merge",
      learnings="Pin the tokenizer files of every input model: one checkpoint had a stale tokenizer config."),
    T("merge", "First merge sweep on 8B SFT/DPO checkpoints", DOING, HIGH,
      "ksugimoto amiyazaki", "07-12", "07-20", "merge"),
    T("merge", "Notes: merging MoE models", DOING, NORMAL,
      "tnoguchi", "07-10", "07-19"),
    T("merge", "Evaluate merges on MT-Bench subsets", TODO, NORMAL,
      "amiyazaki", "07-18", "07-26", "merge"),
    T("merge", "Merge plan for the 8x8B final model", TODO, HIGH,
      "ksugimoto tnoguchi", "07-29", "08-06", "merge"),
    # multimodal
    T("multimodal", "Choose the image encoder and connector", DONE, HIGH,
      "mkawabata", "06-24", "07-01", "multimodal"),
    T("multimodal", "Japanese image-caption data", DONE, HIGH,
      "siida", "06-24", "07-05", "multimodal",
      learnings="Machine-translated captions read unnaturally; a small set of native captions was worth "
                "more than ten times as many translated ones."),
    T("multimodal", "Projector pretraining on captions", BLOCKED, URGENT,
      "mkawabata siida", "07-05", "07-12", "multimodal",
      description="Blocked: the GPUs went to the MoE run on {07-10}; waiting for a lending slot."),
    T("multimodal", "Prototype demo: Japanese VQA", DOING, HIGH,
      "kterada mkawabata", "07-08", "07-26", "multimodal"),
    T("multimodal", "VQA evaluation set (200 Japanese questions)", DOING, NORMAL,
      "nyokoyama", "07-10", "07-22", "multimodal"),
    T("multimodal", "Write up what worked for the final report", TODO, LOW,
      "nyokoyama", "08-01", "08-09"),
    # agent
    T("agent", "Function-calling format in the SFT data", DONE, HIGH,
      "rokabe", "07-01", "07-10", "agent",
      learnings="Use one JSON schema for tools in data and eval; two near-identical formats halved scores."),
    T("agent", "ReAct prompting baseline on the 8B SFT", DONE, NORMAL,
      "ymurata", "07-03", "07-12",
      learnings="The 8B SFT follows the format but loops on failing tools; cap the steps at 8."),
    T("agent", "Japanese tool-use scenarios (50)", DOING, HIGH,
      "hsakai", "07-08", "07-19", "agent"),
    T("agent", "Tool-use benchmark in the nightly evaluation", DOING, HIGH,
      "rokabe ymurata", "07-05", "07-24", "agent"),
    T("agent", "Agent data for the final SFT", TODO, NORMAL,
      "hsakai rokabe", "07-20", "07-31"),
    # code
    T("code", "Code share in the pretraining mix", DONE, NORMAL,
      "mtakeda", "06-10", "06-20",
      learnings="Keep code at a small fixed share of every batch instead of one code-heavy batch."),
    T("code", "Code eval harness (pass@1 per checkpoint)", DONE, HIGH,
      "mtakeda ymurata", "07-01", "07-10", "code",
      learnings="Run every test in its own sandbox with a 10 s timeout: a few generated programs looped "
                "forever and stalled the first harness."),
    T("code", "Code instructions with Japanese docstrings for v3", DOING, HIGH,
      "ckondo", "07-10", "07-19", "code"),
    T("code", "Nightly code eval on the latest MoE checkpoint", BLOCKED, HIGH,
      "mtakeda", "07-12", "07-19", "code",
      description="Blocked: needs MoE checkpoints in Hugging Face format (post-training's conversion)."),
    T("code", "License check of competitive-programming problems", TODO, NORMAL,
      "ckondo", "07-17", "07-26"),
    # tokenizer
    T("tokenizer", "Vocabulary: extend the existing one or train a new tokenizer", DONE, URGENT,
      "imasuda togawa", "06-03", "06-12", "tokenizer",
      learnings="Decide on characters per token measured on held-out Japanese text, not on intuition; the "
                "numbers settled a week of debate in one afternoon."),
    T("tokenizer", "Tokenisation round 1 (first batch)", DONE, URGENT,
      "kaoki mfujisaki", "06-10", "06-16", "tokenizer"),
    T("tokenizer", "Tokenisation round 2", DONE, URGENT,
      "kaoki rfukuda togawa", "06-17", "06-21", "tokenizer"),
    T("tokenizer", "Tokenise the third batch", DOING, HIGH,
      "rfukuda kaoki", "07-08", "07-18"),
    T("tokenizer", "Tokenizer card for the release", TODO, LOW,
      "imasuda", "07-29", "08-05"),
    # training code
    T("training-code", "Throughput benchmark of the candidate architectures on 2 nodes", DONE, URGENT,
      "gozawa dhattori", "06-01", "06-07", "env",
      learnings="Llama-style 35B: 1,200 tokens/GPU/s (230 TFLOPS); DeepSeek-V2: 1,400 (540 TFLOPS if the "
                "2-node results scaled); Llama-style 30-50B with Transformer Engine: 2,520 (430 TFLOPS). "
                "Projected tokens in the window: 820B, 800B and 1,500B."),
    T("training-code", "DeepSeek-V2 scaling test: 3 to 18 nodes", DONE, HIGH,
      "tnishimura hkubota", "06-08", "06-14", "env",
      learnings="450 TFLOPS on 3 nodes but 230 on 18: measure at the node count you will run at before "
                "trusting a projection."),
    T("training-code", "Slurm sbatch templates for multi-node runs", DONE, HIGH,
      "dhattori khirose", "06-03", "06-10",
      learnings="One template with the NCCL settings baked in ended the copy-paste of broken scripts."),
    T("training-code", "8B pretraining run", DONE, URGENT,
      "gozawa rhoshino", "06-21", "07-08", "pretrain-8b"),
    T("training-code", "Dense ~38B pretraining run", DONE, URGENT,
      "tnishimura hkubota", "06-21", "07-05", "dense-38b",
      learnings="Stopped after a loss spike mid-way; two rollbacks with a lower learning rate did not "
                "recover in time. Keeping the 8B run going is what made the switch to an upcycled MoE "
                "possible."),
    T("training-code", "Resume-from-checkpoint test under node drain", DOING, HIGH,
      "dhattori", "07-10", "07-19"),
    T("training-code", "Node health check before every job", BLOCKED, NORMAL,
      "khirose", "07-11", "07-19",
      description="Blocked: needs a Slurm prolog hook that the cluster operator has to enable."),
    T("training-code", "Upstream our Megatron patches", TODO, LOW,
      "gozawa", "07-22", "08-09"),
)
# fmt: on


# --- loading ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DemoSummary:
    subteams: int
    members: int
    active_memberships: int
    ended_memberships: int
    goals: int
    goal_revisions: int
    milestones: int
    tasks: int
    shift: dt.timedelta
    plan_today: dt.date
    password_from_env: bool

    def line(self) -> str:
        weeks = self.shift.days // 7
        return (
            f"Demo loaded: {self.subteams} subteams, {self.members} members "
            f"({self.active_memberships} active and {self.ended_memberships} ended memberships), "
            f"{self.goals} goals with {self.goal_revisions} revisions, {self.milestones} milestones, "
            f"{self.tasks} tasks; plan dates moved by {weeks:+d} weeks (today is plan day "
            f"{self.plan_today:%Y-%m-%d}, week {(self.plan_today - PLAN_START).days // 7 + 1} of 10)."
        )

    def sign_in_lines(self) -> list[str]:
        password = (
            "the password in DEMO_PASSWORD" if self.password_from_env else f"password '{DEFAULT_PASSWORD}'"
        )
        return [
            f"Sign in with {password} as:",
            "  admin       superuser, management team (may do everything)",
            "  htsuchiya   lead of Fine-tuning / post-training",
            "  smaruyama   member of Fine-tuning / post-training",
        ]


def demo_password() -> str:
    return os.environ.get("DEMO_PASSWORD", "") or DEFAULT_PASSWORD


def load_demo(today: dt.date | None = None, password: str | None = None) -> DemoSummary:
    """Create or refresh the demo team, plan, goals and tasks, with dates relative to `today`."""
    _check_specs()
    plan = Plan.for_today(today)
    password_from_env = password is None and bool(os.environ.get("DEMO_PASSWORD", ""))
    password = password if password is not None else demo_password()
    with transaction.atomic():
        subteams = _load_subteams(plan)
        members = _load_people(plan, _password_hash(password))
        _load_memberships(plan, members, subteams)
        _load_milestones(plan, subteams)
        goals = _load_goals(plan, subteams, members)
        _load_tasks(plan, subteams, members, goals)
    return DemoSummary(
        subteams=Subteam.objects.count(),
        members=Member.objects.count(),
        active_memberships=Membership.objects.filter(ended__isnull=True).count(),
        ended_memberships=Membership.objects.filter(ended__isnull=False).count(),
        goals=Goal.objects.count(),
        goal_revisions=GoalRevision.objects.count(),
        milestones=Milestone.objects.count(),
        tasks=Task.objects.count(),
        shift=plan.shift,
        plan_today=plan.plan_today,
        password_from_env=password_from_env,
    )


def _check_specs() -> None:
    """Catch mistakes in the data above before writing anything (unknown slugs, assignees outside a team)."""
    slugs = {s.slug for s in SUBTEAMS}
    goal_keys = {g.key for g in GOALS}
    in_subteam: dict[str, set[str]] = {slug: set() for slug in slugs}
    for person in PEOPLE:
        for stint in person.stints:
            if stint.subteam not in slugs:
                raise ValueError(f"{person.username}: unknown subteam {stint.subteam}")
            in_subteam[stint.subteam].add(person.username)
    for task in TASKS:
        if task.subteam not in slugs or (task.goal is not None and task.goal not in goal_keys):
            raise ValueError(f"task {task.title!r}: unknown subteam or goal")
        outsiders = [u for u in task.assignees if u not in in_subteam[task.subteam]]
        if outsiders:
            raise ValueError(f"task {task.title!r}: {outsiders} not in {task.subteam}")
    for owner, subteam in [*((g.key, g.subteam) for g in GOALS), *((m.title, m.subteam) for m in MILESTONES)]:
        if subteam is not None and subteam not in slugs:
            raise ValueError(f"{owner}: unknown subteam {subteam}")


def _assign(obj: Model, values: Mapping[str, Any]) -> bool:
    """Set field values on a row; True when any changed (unchanged rows are left out of bulk updates)."""
    changed = False
    for name, value in values.items():
        field = obj._meta.get_field(name)
        if isinstance(field, ForeignKey):
            old, new = getattr(obj, field.attname), (value.pk if value is not None else None)
        else:
            old, new = getattr(obj, name), value
        if old != new:
            changed = True
        setattr(obj, name, value)  # also for relations: keeps the loaded object cached on the row
    return changed


def _password_hash(password: str) -> str:
    """One hash shared by every demo user (hashing 45 times would take seconds). When `admin` still has
    this password, its stored hash is reused, so loading again rewrites no user rows."""
    current = get_user_model().objects.filter(username="admin").values_list("password", flat=True).first()
    if current and check_password(password, current):
        return current
    return make_password(password)


def _load_subteams(plan: Plan) -> dict[str, Subteam]:
    subteams = {}
    for spec in SUBTEAMS:
        subteam, _created = Subteam.objects.update_or_create(
            slug=spec.slug,
            defaults={
                "name": spec.name,
                "name_ja": spec.name_ja,
                "purpose": plan.text(spec.purpose),
                "slack_channel": spec.slack_channel,
                "status_note": plan.text(spec.status_note),
                "is_management": spec.is_management,
            },
        )
        subteams[spec.slug] = subteam
    return subteams


USER_FIELDS = ("first_name", "last_name", "email", "password", "is_active", "is_staff", "is_superuser")
# What a profile edit may change, plus the join date the demo plan sets.
MEMBER_FIELDS = (*services.MEMBER_FIELDS, "joined")


def _load_people(plan: Plan, password_hash: str) -> dict[str, Member]:
    """Users and their Member profiles, in bulk. Every demo user gets the same (already hashed) password:
    hashing once instead of 45 times keeps the load fast."""
    user_model = get_user_model()
    usernames = [p.username for p in PEOPLE]
    users = {u.get_username(): u for u in user_model.objects.filter(username__in=usernames)}
    new_users, old_users = [], []
    for person in PEOPLE:
        values: dict[str, Any] = {
            "first_name": "" if person.is_admin else person.given,
            "last_name": "" if person.is_admin else person.family,
            "email": f"{person.username}@example.org",
            "password": password_hash,
            "is_active": True,
            "is_staff": person.is_admin,
            "is_superuser": person.is_admin,
        }
        existing = users.get(person.username)
        if existing is None:
            new_users.append(user_model(username=person.username, **values))
        else:
            if _assign(existing, values):
                old_users.append(existing)
    user_model.objects.bulk_create(new_users)
    user_model.objects.bulk_update(old_users, USER_FIELDS)
    users = {u.get_username(): u for u in user_model.objects.filter(username__in=usernames)}

    members = {m.user_id: m for m in Member.objects.filter(user__in=users.values())}
    new_members, old_members = [], []
    for number, person in enumerate(PEOPLE):
        user = users[person.username]
        handle = f"{person.given}-{person.family}".lower() if not person.is_admin else "tanuki-admin"
        fields: dict[str, Any] = {
            "display_name": person.display_name,
            "slack_user_id": f"U0DEMO{number:03d}",
            "github": handle,
            "huggingface": handle,
            "wandb": person.username,
            "cluster_account": f"tk-{person.username}",
            "bio": plan.text(person.bio),
            "joined": plan.day(person.joined),
            **{name: name not in person.missing for name, _label in Member.ONBOARDING_FIELDS},
        }
        member = members.get(user.pk)
        if member is None:
            member = Member(user=user, **fields)
            new_members.append(member)
        else:
            if _assign(member, fields):
                old_members.append(member)
    Member.objects.bulk_create(new_members)
    Member.objects.bulk_update(old_members, MEMBER_FIELDS)
    by_user = {m.user_id: m for m in Member.objects.filter(user__in=users.values())}
    return {username: by_user[user.pk] for username, user in users.items()}


def _load_memberships(plan: Plan, members: dict[str, Member], subteams: dict[str, Subteam]) -> None:
    """One row per stint, keyed on (member, subteam, ended or not); extra rows someone added are kept."""
    existing: dict[tuple[int, int, bool], Membership] = {}
    for row in Membership.objects.filter(member__in=members.values()).order_by("id"):
        existing.setdefault((row.member_id, row.subteam_id, row.ended is None), row)
    new: list[Membership] = []
    old: list[Membership] = []
    for person in PEOPLE:
        member = members[person.username]
        for stint in person.stints:
            subteam = subteams[stint.subteam]
            fields = {
                "role": stint.role,
                "started": plan.day(max(stint.start, person.joined)),
                "ended": plan.day(stint.end) if stint.end else None,
            }
            found = existing.get((member.pk, subteam.pk, stint.end is None))
            if found is None:
                new.append(Membership(member=member, subteam=subteam, **fields))
            else:
                if _assign(found, fields):
                    old.append(found)
    Membership.objects.bulk_update(old, ["role", "started", "ended"])
    Membership.objects.bulk_create(new)


def _validate(obj: Task | Milestone) -> None:
    """`full_clean` without its per-row queries: the foreign keys were just loaded, and the date checks
    in `clean()` are the ones the database constraints enforce again on insert."""
    obj.clean_fields(exclude=["subteam", "goal", "created_by"])
    obj.clean()


def _milestone_done(plan: Plan, spec: MilestoneSpec) -> bool:
    return plan.is_past(spec.date) and spec.title != OVERDUE_MILESTONE


def _load_milestones(plan: Plan, subteams: dict[str, Subteam]) -> None:
    existing = {
        (m.subteam_id, m.title): m for m in Milestone.objects.filter(title__in=[s.title for s in MILESTONES])
    }
    new, old = [], []
    for spec in MILESTONES:
        subteam = subteams[spec.subteam] if spec.subteam else None
        fields = {
            "date": plan.day(spec.date),
            "done": _milestone_done(plan, spec),
            "description": plan.text(spec.description),
        }
        milestone = existing.get((subteam.pk if subteam else None, spec.title))
        if milestone is None:
            milestone = Milestone(subteam=subteam, title=spec.title, **fields)
            new.append(milestone)
        else:
            if _assign(milestone, fields):
                old.append(milestone)
        _validate(milestone)
    Milestone.objects.bulk_update(old, ["date", "done", "description"])
    Milestone.objects.bulk_create(new)


def _goal_values(plan: Plan, values: Mapping[str, Any], subteams: dict[str, Subteam]) -> dict[str, Any]:
    """Goal field values from a spec: plan dates moved (also in the target's prose), subteam slugs resolved."""
    resolved = dict(values)
    if isinstance(resolved.get("target"), str):
        resolved["target"] = plan.text(resolved["target"])
    for name in ("start_date", "due_date"):
        if isinstance(resolved.get(name), str):
            resolved[name] = plan.day(resolved[name])
    if isinstance(resolved.get("subteam"), str):
        resolved["subteam"] = subteams[resolved["subteam"]]
    return resolved


def _load_goals(plan: Plan, subteams: dict[str, Subteam], members: dict[str, Member]) -> dict[str, Goal]:
    """Rebuild the demo goals: delete last load's (found by any title they have had), then replay each
    goal's history through the services, dated on the plan."""
    stale = Q(pk__in=[])
    for spec in GOALS:
        where = Q(subteam__isnull=True) if spec.subteam is None else Q(subteam=subteams[spec.subteam])
        stale |= where & Q(title__in=spec.titles)
    Goal.objects.filter(stale).delete()

    goals = {}
    for spec in GOALS:
        subteam = subteams[spec.subteam] if spec.subteam else None
        created = plan.at(spec.created, hour=20)
        goal = services.create_goal(
            members[spec.author],
            reason=plan.text(spec.reason),
            subteam=subteam,
            **_goal_values(plan, spec.fields, subteams),
        )
        GoalRevision.objects.filter(goal=goal).update(created_at=created)
        updated = created
        for revision in spec.revisions:
            author = members[revision.author] if revision.author else None
            record = services.update_goal(
                author,
                goal,
                _goal_values(plan, revision.changes, subteams),
                reason=plan.text(revision.reason),
                source=revision.source,
            )
            if record is None:
                raise ValueError(f"goal {spec.key}: revision on {revision.on} changes nothing")
            updated = plan.at(revision.on, hour=22)
            GoalRevision.objects.filter(pk=record.pk).update(created_at=updated)
        Goal.objects.filter(pk=goal.pk).update(created_at=created, updated_at=updated)
        goal.refresh_from_db()
        goals[spec.key] = goal
    return goals


def _task_times(plan: Plan, spec: TaskSpec) -> tuple[dt.datetime, dt.datetime]:
    """created_at and updated_at: never in the future of the demo's today."""
    latest = (plan.plan_today - dt.timedelta(days=1)).strftime("%m-%d")
    created = min(spec.start, latest)
    touched = max(created, min(spec.due if spec.status == DONE else latest, latest))
    return plan.at(created, hour=10), plan.at(touched, hour=18)


TASK_UPDATE_FIELDS = (
    "description",
    "status",
    "priority",
    "start_date",
    "due_date",
    "goal",
    "learnings",
    "created_by",
    "created_at",
    "updated_at",
)


def _load_tasks(
    plan: Plan, subteams: dict[str, Subteam], members: dict[str, Member], goals: dict[str, Goal]
) -> None:
    existing = {(t.subteam_id, t.title): t for t in Task.objects.filter(title__in=[s.title for s in TASKS])}
    new, old = [], []
    ordered: list[tuple[Task, TaskSpec]] = []
    for spec in TASKS:
        subteam = subteams[spec.subteam]
        created, updated = _task_times(plan, spec)
        fields: dict[str, Any] = {
            "description": plan.text(spec.description),
            "status": spec.status,
            "priority": spec.priority,
            "start_date": plan.day(spec.start),
            "due_date": plan.day(spec.due),
            "goal": goals[spec.goal] if spec.goal else None,
            "learnings": plan.text(spec.learnings),
            "created_by": members[spec.assignees[0]],
            "created_at": created,
            "updated_at": updated,
        }
        task = existing.get((subteam.pk, spec.title))
        if task is None:
            task = Task(subteam=subteam, title=spec.title, **fields)
            new.append(task)
        else:
            if _assign(task, fields):
                old.append(task)
        _validate(task)
        ordered.append((task, spec))
    Task.objects.bulk_update(old, TASK_UPDATE_FIELDS)
    Task.objects.bulk_create(new)
    if any(task.pk is None for task, _spec in ordered):  # backends that do not return ids from bulk inserts
        saved = {(t.subteam_id, t.title): t for t in Task.objects.filter(title__in=[s.title for s in TASKS])}
        ordered = [(saved[(task.subteam_id, task.title)], spec) for task, spec in ordered]
    _set_assignees([(task, [members[u] for u in spec.assignees]) for task, spec in ordered])


def _set_assignees(pairs: Iterable[tuple[Task, Sequence[Member]]]) -> None:
    through = Task.assignees.through
    pairs = list(pairs)
    through.objects.filter(task_id__in=[task.pk for task, _members in pairs]).delete()
    through.objects.bulk_create(
        [through(task_id=task.pk, member_id=member.pk) for task, assignees in pairs for member in assignees]
    )
