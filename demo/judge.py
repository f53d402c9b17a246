"""A stand-in MT-Bench judge for the demo: an OpenAI-style chat-completions endpoint with made-up scores.

The demo's dev cluster cannot reach GPT-4o, so its evaluation jobs ask this endpoint instead
(`/demo-judge/v1/chat/completions`: routed by demo/urls.py, which only a portal with the demo app
installed mounts, and answering only with DEBUG on). The "rating" is a deterministic number
from the answer's length and the question: it says nothing about quality. It exists so that a demo
pipeline's evaluation step completes and its scores flow into the leaderboard and the goals.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

KEY = "demo-judge"  # the demo cluster's jobs send it: the DEMO_JUDGE_KEY the portal stages for each
KEY_ENV = "DEMO_JUDGE_KEY"  # the judge endpoint's key variable (make demo sets it on the portal host)
ANSWER_RE = re.compile(r"\[The Start of Assistant's Answer\](.*?)\[The End of Assistant's Answer\]", re.S)


def rating(prompt: str) -> int:
    """A made-up 1-10 score: the same prompt always gets the same one."""
    answers = ANSWER_RE.findall(prompt)
    answer = answers[-1] if answers else prompt
    digest = int(hashlib.sha256(prompt.encode()).hexdigest()[:8], 16)
    return max(1, min(10, 3 + len(answer.strip()) // 12 + digest % 4))


@csrf_exempt
@require_POST
def chat_completions(request: HttpRequest) -> HttpResponse:
    if not settings.DEBUG:
        return HttpResponse(status=404)
    if request.headers.get("Authorization") != f"Bearer {KEY}":
        return JsonResponse({"error": {"message": "unknown key"}}, status=401)
    try:
        body = json.loads(request.body)
        prompt = str(body["messages"][-1]["content"])
    except (ValueError, KeyError, IndexError, TypeError):
        return JsonResponse({"error": {"message": "expected a chat-completions request"}}, status=400)
    score = rating(prompt)
    text = f"(Demo judge: a made-up score, not a quality judgment.) Rating: [[{score}]]"
    return JsonResponse(
        {
            "id": f"demo-{int(time.time() * 1000)}",
            "object": "chat.completion",
            "model": body.get("model", "demo-judge"),
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }
    )
