"""The score in a customer's answer to the satisfaction survey, read from the reply's own text.

A score is a number from 1 to 5 said as one («5分», «打4分», «4/5», «4 out of 5», «score: 3»,
«五星», «满意度：4»), or a word of the scale: 非常满意 5, 满意 4, 一般 3, 不满意 2, 非常不满意 1
(and the English "very satisfied" … "very dissatisfied"). Only the text above the quoted
history counts (``maild.mail.quoting``), and the survey's own wording copied into the reply
(«总体满意度（1-5 分）：») is not a score. Numbers that are something else — dates, times,
order numbers, quantities — are never read as a score: a bare number counts only when it is
the whole answer or follows the survey's "satisfaction" question.

Unsure means no score: two different scores, a number outside 1–5 (a 10-point answer), or
no score at all. ``Score.value`` is then None and ``Score.reason`` says why, for the timeline.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from maild.mail.quoting import reply_top

_ZH_NUM = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8,
           "九": 9, "十": 10}
_N = r"(10|\d|[一二两三四五六七八九十])"
# the survey's own scale, copied into a reply: (1-5 分), (1-5), 1~5分, 1 to 5
_RANGE = re.compile(r"[（(]?\s*[1一]\s*(?:[-~–—至到]|to)\s*[5五]\s*(?:分|星)?\s*[）)]?",
                    re.IGNORECASE)
# a number said as a score; not a time (3点5分, 12:05), a duration (5分钟) or a date (3/5/2026)
_NUMERIC = (
    re.compile(rf"(?<![\d点時时:：.])(?:打|给|评|得)?\s*{_N}\s*(?:分|颗星|星)"
               r"(?!钟|之|批|期|公司|部|[\d.])"),
    re.compile(r"(?<![\d/.\-])(\d{1,2})\s*/\s*(5|10)(?![\d/.\-号日月])"),
    re.compile(r"(?<![\d.])(\d{1,2})\s*(?:out\s+of|of)\s*(5|10)\b", re.IGNORECASE),
    re.compile(r"\b(\d{1,2})\s*stars?\b", re.IGNORECASE),
    re.compile(r"\b(one|two|three|four|five)\s+stars?\b", re.IGNORECASE),
    re.compile(r"(?:\bscore|\brating|\brate|评分|打分|分数|得分|满意度|总体满意度|satisfaction)"
               rf"\s*(?:[（(][^）)]*[）)])?\s*(?:[:：=]|为|是|is)?\s*{_N}(?![\d\-/:年月日号]|\.\d)",
               re.IGNORECASE),
)
_EN_NUM = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}
# the words of the scale, longest first; a matched phrase is blanked so 不满意 is not also 满意
_WORDS: tuple[tuple[re.Pattern[str], int], ...] = tuple(
    (re.compile(p, re.IGNORECASE), v) for p, v in (
        (r"(?:非常|很|极|十分|特别|相当)不满意?|极差|很差|非常差|太差", 1),
        (r"very\s+(?:dis|un)satisfied|extremely\s+(?:dis|un)satisfied|terrible|very\s+poor"
         r"|very\s+bad|awful", 1),
        (r"不(?:太|很|是很|大|怎么)满意|不满意|有待改进|较差|比较差", 2),
        (r"(?:dis|un)satisfied|not\s+(?:very\s+)?satisfied|not\s+happy|poor", 2),
        (r"非常满意|十分满意|很满意|特别满意|相当满意|超级满意|极其满意|非常好|好评|完美", 5),
        (r"very\s+satisfied|extremely\s+satisfied|highly\s+satisfied|excellent|outstanding"
         r"|very\s+happy|perfect", 5),
        (r"一般般?|还行|还可以|凑合|中规中矩|马马虎虎", 3),
        (r"neutral|average|so-so|okay-ish|mediocre", 3),
        (r"比较满意|基本满意|满意|挺好|不错", 4),
        (r"satisfied", 4),
    ))


@dataclass(frozen=True)
class Score:
    value: int | None  # 1..5, or None when no score could be read with confidence
    basis: str  # the words the score was read from (or that made it unsure)
    reason: str = ""  # why there is no score: see REASONS

    def text(self, language: str = "zh") -> str:
        """For the timeline: 「满意度：4/5」, or why there is no score."""
        zh = language != "en"
        if self.value is not None:
            return f"满意度：{self.value}/5（{self.basis}）" if zh else \
                f"satisfaction: {self.value}/5 ({self.basis})"
        why = REASONS.get(self.reason, REASONS["no_score"])[0 if zh else 1]
        said = f"{'：' if zh else ': '}{self.basis}" if self.basis else ""
        return (f"满意度：未能识别评分，{why}{said}" if zh
                else f"satisfaction: no score recorded, {why}{said}")


REASONS = {"empty": ("回复为空", "the reply is empty"),
           "no_score": ("回复中没有评分", "the reply gives no score"),
           "several": ("回复中有多个不同的评分", "the reply gives several scores"),
           "ten_point": ("似乎按 10 分制作答", "the answer seems to be out of 10"),
           "out_of_range": ("评分不在 1–5 之间", "the score is not between 1 and 5"),
           "mixed": ("评价前后不一", "the words disagree"),
           "too_long": ("回复过长，未自动识别评分", "the reply is too long to read a score from")}
#: characters of a reply's own text read for a score: a survey answer is a few lines, and
#: the patterns must never run over megabytes a sender chose
MAX_TEXT = 20_000


def _number(token: str) -> int:
    token = token.strip()
    if token.isdigit():
        return int(token)
    return _ZH_NUM.get(token) or _EN_NUM.get(token.lower(), 0)


def _own_text(text: str) -> str:
    own = unicodedata.normalize("NFKC", reply_top(text))
    return _RANGE.sub(" ", own)


def parse(text: str) -> Score:
    """The score in a survey reply (see the module's text)."""
    own = _own_text(text)
    if not own.strip():
        return Score(None, "", "empty")
    if len(own) > MAX_TEXT:
        return Score(None, "", "too_long")
    numbers: dict[int, str] = {}
    for pattern in _NUMERIC:
        for m in pattern.finditer(own):
            value = _number(m.group(1))
            if m.lastindex and m.lastindex >= 2 and m.group(2) == "10":
                return Score(None, m.group(0).strip(), "ten_point")
            numbers.setdefault(value, m.group(0).strip())
    bare = own.strip().rstrip("。.!！ ")
    if not numbers and re.fullmatch(r"[1-5]", bare):
        numbers[int(bare)] = bare
    if len(numbers) > 1:
        return Score(None, "、".join(numbers.values()), "several")
    if numbers:
        [(value, said)] = numbers.items()
        if not 1 <= value <= 5:
            return Score(None, said, "out_of_range")
        return Score(value, said)
    return _words(own)


def _words(own: str) -> Score:
    """The scale's words, longest first; two different levels are unsure."""
    words: dict[int, str] = {}
    rest = re.sub(r"满意度|satisfaction", " ", own, flags=re.IGNORECASE)
    for pattern, value in _WORDS:
        for m in pattern.finditer(rest):
            words.setdefault(value, m.group(0))
        rest = pattern.sub(" ", rest)
    if len(words) > 1:
        return Score(None, "、".join(words.values()), "mixed")
    if words:
        [(value, said)] = words.items()
        return Score(value, said)
    return Score(None, "", "no_score")
