"""What external parties mean without commands: a confirmation, a delay, an invoice.

Customers and suppliers never give commands; their words are read for these few intents,
conservatively, and everything they write is kept.

A confirmation is read from the reply's own words (:func:`own_words`: not the quoted
history, not the greeting, not the signature), all of them, and the attachments' names.
Three outcomes (:class:`Reading`):

``confirmed``
    a clear yes (确认, 同意, 无异议, confirmed, agreed, approved, looks good, …) or a file
    whose name says it is signed, and nothing that takes it back;
``feedback``
    a hedge or a change request (但是, 不过, 修改, 调整, but, except, however, change, …), a
    question, a refusal or a "not yet" (不同意, 内部确认后回复, will confirm), a file named
    as comments (「…-修改意见.docx」), or words without any yes: the customer's feedback;
``unsure``
    what only a person can judge: a bare 收到 / "received", an "OK" or 好的 followed by more
    text, a confirmation letter sent back without a word, an empty reply, a very long one.

The safe mistake is the one made: anything doubtful is not taken as a confirmation.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from maild.mail.message import ParsedMail
from maild.mail.quoting import reply_top

__all__ = ["Outcome", "Reading", "explains_delay", "is_confirmation", "is_invoice",
           "mentions_delay", "own_words", "read_confirmation", "read_reply"]

#: a reply's own words longer than this are not read for a confirmation: a person judges them
MAX_WORDS = 20_000
_DELAY = re.compile(r"延期|延迟|推迟|延后|晚于|无法按期|不能按期|delay|postpone|late",
                    re.IGNORECASE)
_EXPLAINED = (re.compile(r"原因|because|due to|reason", re.IGNORECASE),
              re.compile(r"计划|方案|安排|plan|schedule", re.IGNORECASE))
_INVOICE = re.compile(r"发票|invoice|fapiao", re.IGNORECASE)

# -- the reply's own words --------------------------------------------------------------------

_TITLES = r"(?:经理|总经理|总监|总|工|老师|先生|女士|小姐|主任|部长|主管|老板|同事|团队|专员)"
_GREETING = re.compile(
    r"^(?:"
    r"(?:hi|hello|hey|dear|good\s+(?:morning|afternoon|evening))\b[^.!?。！？\n]{0,60}?"
    r"(?:[,，:：!！]+|$)"
    r"|尊敬的[^，,:：。\n]{0,30}[，,:：]+"
    r"|[^，,:：。！!？?\n]{0,16}?[，,]?\s*(?:您好|你好|您们好|大家好|各位好|早上好|上午好|下午好|晚上好)"
    r"[!！,，:：。~～]*"
    r"|[^，,:：。！!？?\n]{1,12}" + _TITLES + r"好[!！,，:：。~～]*"
    r"|[^，,:：。！!？?\s][^，,:：。！!？?\n]{0,24}[:：]\s*$"
    r")\s*", re.IGNORECASE | re.ASCII)
_CLOSING = re.compile(
    r"^(?:谢谢|谢谢您|多谢|感谢|非常感谢|感谢支持|此致|敬礼|此致敬礼|祝好|顺祝商祺|顺颂商祺|"
    r"顺颂时祺|祝商祺|祝工作顺利|祝一切顺利|best|best regards|kind regards|warm regards|"
    r"regards|many thanks|thanks|thank you|thanks and regards|thanks & regards|cheers|br|"
    r"sincerely|yours sincerely|yours faithfully|yours)[\s,，.!！。~～]*$",
    re.IGNORECASE | re.ASCII)
_SENT_FROM = re.compile(
    r"^(?:(?:发自我的|发自|来自|从我的)\s*(?:iphone|ipad|android|手机|华为|小米|网易邮箱|qq\s*邮箱|"
    r"outlook|foxmail|企业微信|钉钉|邮箱大师|.{0,20}(?:邮箱|mail|手机|phone))"
    r"|(?:sent from|get outlook for|sent with|sent via)\b.{0,40}$)", re.IGNORECASE | re.ASCII)
#: a legal footer: the reply ends where it starts
_DISCLAIMER = re.compile(
    r"^(?:免责声明|保密声明|法律声明|(?:本|此)邮件(?:及其附件)?(?:含有|包含|可能|仅|中的信息)|"
    r"this\s+(?:e-?mail|message)\s+(?:and\s+any\s+(?:files|attachments?)\s+)?"
    r"(?:is|are|may|contains?|transmitted)|confidential(?:ity)?\s+(?:notice|note|statement)|"
    r"disclaimer)", re.IGNORECASE | re.ASCII)
#: a signature's contact lines ("电话：…", "Tel: …"): dropped at the end, whatever they hold
_CONTACT_LINE = re.compile(
    r"^(?:电话|手机|座机|传真|地址|邮箱|网址|微信|邮编|qq|tel|t|m|f|mob(?:ile)?|phone|fax|"
    r"address|add|e-?mail|wechat|web(?:site)?)\s*[:：]", re.IGNORECASE | re.ASCII)
#: a signature's name, title, company, address and number lines: dropped when they decide
#: nothing ("But please change the delivery address." stays)
_TITLE_LINE = re.compile(
    r"(?:集团|公司$|经理$|总监$|主管$|主任$|工程师$|专员$|部$|\bmanager\b|\bdirector\b|"
    r"\bengineer\b|\bpurchasing\b|\bprocurement\b|\bsales\b|\bdepartment\b|有限公司|"
    r"co\.,?\s*ltd|\bltd\b|\binc\b|\bgmbh\b|\bcorp\b|[\w.+-]+@[\w-]+\.[\w.-]+|www\.|"
    r"https?://|^[+(]?\d[\d\s()+-]{6,}$)",
    re.IGNORECASE | re.ASCII)
_NAME_LINE = re.compile(r"^(?:[\u4e00-\u9fff·]{2,4}|[A-Z][a-z]+(?:\s+[A-Z][a-z.]+){0,2})$")


def own_words(text: str) -> str:
    """The reply's own words: above the quoted history, without the greeting lines, the
    closing, the signature and legal footer below it, and the "sent from my phone" line;
    NFKC-normalised (full-width ＯＫ and ？ read as OK and ?)."""
    text = unicodedata.normalize("NFKC", reply_top(text))  # ＯＫ, full-width ？ and blanks
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    for i, line in enumerate(lines):
        if _SENT_FROM.match(line) or (i and _DISCLAIMER.match(line)):
            del lines[i:]
            break
    for _ in range(3):  # "Dear Ms Wang,", "Good morning!", then the text
        m = _GREETING.match(lines[0]) if lines else None
        if not m or _decides(m.group(0)):
            break
        rest = lines[0][m.end():].strip()
        if rest:
            lines[0] = rest
            break
        del lines[0]
    for i, line in enumerate(lines):
        if i and _CLOSING.match(line):
            del lines[i:]
            break
    while len(lines) > 1 and (_CONTACT_LINE.search(lines[-1]) or not _decides(lines[-1]) and (
            _TITLE_LINE.search(lines[-1]) or _NAME_LINE.match(lines[-1]))):
        del lines[-1]
    return "\n".join(lines)


# -- what the words say -----------------------------------------------------------------------
#
# Read in this order, each match blanked out before the next pattern looks: "no changes"
# must not count as a change, "请确认" not as a yes, "有问题请联系" not as a question.

_NEG = (r"(?:不|未|没|没有|无法|不能|不予|暂不|暂未|尚未|尚不|还未|还没有|还没|待|需|需要|要|请|再|"
        r"等|拟)")
#: a yes said with "to", which would otherwise read as a "will confirm"
_YES_PHRASE = re.compile(
    r"\b(?:happy|pleased|glad|delighted|able|hereby)\s+(?:to\s+)?(?:\w+\s+)?"
    r"(?:confirm|accept|approve|agree)\w*"
    r"|\b(?:would\s+like|wish|want)\s+to\s+(?:confirm|accept|approve)\s+(?:the|our|your|this)\s+"
    r"(?:order|po|purchase\s+order|solution|proposal|quotation|quote|offer|contract)\b"
    r"|\bok(?:ay)?\s+(?:for|with|by)\s+(?:us|me)\b", re.IGNORECASE | re.ASCII)
#: a yes that is really a "no change": counts as a confirmation and hides the change word
_NO_CHANGE = re.compile(
    r"(?:无|没有|没|无需|不需|不需要|不用|毋需|无须|并无)(?:任何|其他|其它|别的|再)?"
    r"(?:异议|意见|修改意见|修改|调整|更改|变更|问题|疑问)"
    r"|\bno\s+(?:further\s+|more\s+|other\s+)?(?:objections?|changes?|comments?|issues?|"
    r"problems?|questions?|concerns?|amendments?|modifications?)\b"
    r"|\bwithout\s+(?:any\s+)?(?:changes?|modifications?|comments?)\b|\bnot\s+a\s+problem\b",
    re.IGNORECASE | re.ASCII)
#: polite closings that mention questions or problems without raising any
_NEUTRAL = re.compile(
    r"(?:如|若|如果)(?:有|还有)?(?:任何|其他|其它)?(?:问题|疑问)(?:[，,]?\s*(?:请|欢迎|随时)?"
    r"(?:与我|和我|跟我)?(?:们)?(?:联系|沟通|告知|告诉我))?"
    r"|有(?:任何)?(?:问题|疑问)(?:请|再|随时)?(?:联系|沟通)|但不限于"
    r"|\bif\s+(?:you\s+have\s+)?any\s+(?:questions?|issues?|problems?)\b"
    r"|\blet\s+(?:me|us)\s+know\s+if\b|\bfeel\s+free\s+to\b",
    re.IGNORECASE | re.ASCII)
#: not a yes: refused, asked of us, or put off (不同意, 请确认, 内部确认后回复, will confirm)
_NOT_YET = re.compile(
    _NEG + r"(?:太|很|是很|完全|全|大|能|可|会|便|予|敢|我们|我方|我司|贵司|内部|领导|老板|公司|"
    r"一下|进一步)?(?:确认|同意|确定|认可|接受|签字|签章|盖章|批准|审批|通过|苟同)"
    r"|(?:确认|同意|审批|批准|签字|盖章|讨论|研究|评估)(?:后|中|一下|了一下)"
    r"|不行|不可以|不妥|不合适|不满意|拒绝|内部讨论|内部审批|内部评估|走流程|再看看|再议"
    r"|(?:后|稍后|另行)再?(?:回复|答复|告知|通知|反馈|确认)|\bget\s+back\s+to\s+you\b"
    r"|\b(?:not|never|cannot|can\s+not|\w+n['’]t|unable\s+to|yet\s+to)\s+(?:\w+\s+){0,3}?"
    r"(?:confirm|agree|approve|accept|sign|proceed)\w*"
    r"|\b(?:will|would|shall|to|need\s+to|needs\s+to|must|going\s+to|have\s+to)\s+(?:\w+\s+){0,2}?"
    r"(?:confirm|agree|approve|accept|sign|check|review|discuss)\w*"
    r"|\b(?:disagree\w*|reject\w*|declin\w*|pending|awaiting|once\s+approved|after\s+approval|"
    r"not\s+sure)\b"
    r"|\b(?:please|pls|kindly)\s+confirm\b",
    re.IGNORECASE | re.ASCII)
#: hedges and change requests: feedback, whatever else the reply says
_CHANGE = re.compile(
    r"但是|但|不过|可是|然而|只是|除了|除外|前提是|条件是|修改|修订|调整|更改|改为|改成|改一下|"
    r"变更|更换|补充|增加|删除|删掉|去掉|提前|推迟|延后|意见|问题|建议|重新|疑问|"
    r"原则上|基本上|基本|大体上|大致|初步|暂时|暂定"
    r"|\b(?:but|except|excepting|however|although|though|unless|instead|only\s+if|provided\s+that|"
    r"in\s+principle|preliminar\w*|tentative\w*|for\s+now|"
    r"subject\s+to|changes?|changed|modif\w*|revis\w*|adjust\w*|amend\w*|corrections?|"
    r"comments?|concerns?|issues?|questions?|problems?|suggest\w*)\b"
    r"|\b(?:please|pls|kindly|need\s+to|needs\s+to|should|must|would\s+like\s+to)\s+(?:\w+\s+){0,2}?"
    r"(?:update|change|modify|revise|adjust|amend|add|remove|move|replace|reduce|increase)\b",
    re.IGNORECASE | re.ASCII)
_QUESTION = re.compile(r"[?？]|请问|能否|可否|是否|能不能|可不可以|有没有|吗[。.!！]?$|呢[。.!！]?$"
                       r"|\b(?:could|can|would|will)\s+you\b",
                       re.IGNORECASE | re.ASCII | re.MULTILINE)
#: a clear yes
_YES = re.compile(
    r"确认(?!收到|函|单|书|件|邮件)|同意|无异议|认可|接受|批准|"
    r"已签字|已签章|已盖章|已回签|签字确认|盖章确认|签字版|盖章版|签章版|"
    r"(?:就|请)?(?:按|照)(?:此|这个|该|本|以上)?(?:方案|版本|订单)?(?:执行|进行|安排|办理|实施)"
    r"|就(?:这么|这样)(?:定|办)"
    r"|\b(?:confirm|confirmed|confirms|we\s+confirm|agree|agreed|approve|approved|accept|accepted|"
    r"signed|countersigned|looks\s+good|look\s+good|sounds\s+good|all\s+good|lgtm|"
    r"fine\s+(?:with|by)\s+(?:us|me)|works\s+for\s+(?:us|me)|go\s+ahead|proceed)\b",
    re.IGNORECASE | re.ASCII)
#: a weak yes: enough alone, not when followed by words we cannot judge
_WEAK = re.compile(r"\b(?:ok|okay|fine|sure|yes)\b|好的|好滴|可以|嗯"
                   r"|(?<![\u4e00-\u9fff])[行好](?![\u4e00-\u9fff])", re.IGNORECASE | re.ASCII)
#: receipt, not agreement
_ACK = re.compile(
    r"确认收到|已收到|收到|已阅|知悉|知道了|了解|谢谢|感谢|多谢|请查收|请查阅|见附件|详见附件"
    r"|\b(?:received|noted|thanks|thank\s+you|well\s+received|got\s+it|acknowledged|"
    r"please\s+find\s+(?:the\s+)?attached|see\s+(?:the\s+)?attach\w*|attached)\b",
    re.IGNORECASE | re.ASCII)
_FILLER = re.compile(r"[\s\W_]+", re.UNICODE)
#: what may stand around a weak yes without making it unclear: "方案OK了", "This is fine."
_PARTICLES = re.compile(
    r"(?:这个|这版|此|该|本|贵司的?|你们的?)?(?:方案|订单|版本|报价|合同|确认函|排期|安排)|"
    r"[了啊呀哈吧哦的呢嘛啦都也]|\b(?:the|this|that|it|is|all|for|us|me|with|by|to|solution|"
    r"proposal|order|quote|quotation|version)\b", re.IGNORECASE | re.ASCII)
#: file names: signed or confirmed, or comments on the letter
_FILE_SIGNED = re.compile(r"签字|签章|盖章|已签|回签|签署|已确认|确认版|"
                          r"(?<![a-z])(?:signed|countersigned|confirmed|approved)(?![a-z])",
                          re.IGNORECASE)
_FILE_CHANGE = re.compile(r"修改|修订|意见|批注|调整|变更|反馈|建议|问题|草稿|draft|comment|"
                          r"review|revis|change|markup|marked|redline|feedback|question",
                          re.IGNORECASE)
_FILE_CONFIRMISH = re.compile(r"确认|confirm", re.IGNORECASE)


def _decides(text: str) -> bool:
    return any(p.search(text) for p in (_YES, _WEAK, _ACK, _CHANGE, _NOT_YET, _QUESTION))


class Outcome(StrEnum):
    CONFIRMED = "confirmed"
    FEEDBACK = "feedback"
    UNSURE = "unsure"


#: why, in the organisation's language: {evidence} is the words or file that decided
_REASONS: dict[str, tuple[str, str]] = {
    "yes": ("回复中的「{evidence}」表示确认", "{evidence!r} confirms"),
    "signed_file": ("附件「{evidence}」表明已签字或确认",
                    "the file {evidence!r} is signed or confirmed"),
    "change": ("回复中有「{evidence}」，是修改要求或保留意见，不是确认",
               "{evidence!r} asks for changes or holds back: not a confirmation"),
    "question": ("回复中有提问（「{evidence}」），不是确认",
                 "a question ({evidence!r}): not a confirmation"),
    "not_yet": ("「{evidence}」：尚未确认或不同意", "{evidence!r}: not confirmed (yet)"),
    "change_file": ("附件「{evidence}」是修改意见，不是确认",
                    "the file {evidence!r} holds comments: not a confirmation"),
    "no_yes": ("回复中没有确认的表示", "nothing in the reply confirms"),
    "ack": ("只有「{evidence}」，看不出是否同意",
            "only {evidence!r}: not clear whether they agree"),
    "weak_more": ("「{evidence}」之后还有系统无法判断的内容",
                  "{evidence!r} is followed by text maild cannot judge"),
    "file_only": ("附件「{evidence}」，但没有说明是否确认",
                  "the file {evidence!r}, with no word on whether they confirm"),
    "empty": ("回复没有正文", "the reply has no text of its own"),
    "long": ("回复很长（{evidence} 字），需要人工判断",
             "a long reply ({evidence} characters): a person must judge"),
}


@dataclass(frozen=True)
class Reading:
    """What a party's reply says about the confirmation asked of them, and why."""

    outcome: Outcome
    why: str  # a key of _REASONS
    evidence: str = ""  # the words or the file name that decided, as written

    def reason(self, language: str = "zh") -> str:
        zh, en = _REASONS[self.why]
        return (en if language == "en" else zh).format(evidence=self.evidence[:80])


def read_confirmation(mail: ParsedMail) -> Reading:
    """How a party's reply answers a request to confirm (see the module docstring)."""
    return read_reply(mail.text, [a.filename for a in mail.attachments])


def read_reply(text: str, filenames: Sequence[str] = ()) -> Reading:
    """:func:`read_confirmation` on the parts of a mail: its text and its files' names."""
    commented = next((n for n in filenames if _FILE_CHANGE.search(n)), None)
    if commented:
        return Reading(Outcome.FEEDBACK, "change_file", commented)
    words = own_words(text)
    if len(words) > MAX_WORDS:
        return Reading(Outcome.UNSURE, "long", str(len(words)))
    left, yes_phrase = _take(_YES_PHRASE, words)
    left, no_change = _take(_NO_CHANGE, left)
    left, _ = _take(_NEUTRAL, left)
    left, not_yet = _take(_NOT_YET, left)
    held = _held_back(left, not_yet)
    if held:
        return held
    yes = _YES.search(left)
    if yes or yes_phrase or no_change:
        return Reading(Outcome.CONFIRMED, "yes", yes.group(0) if yes else yes_phrase or no_change)
    signed = next((n for n in filenames if _FILE_SIGNED.search(n)), None)
    if signed:
        return Reading(Outcome.CONFIRMED, "signed_file", signed)
    return _unclear(words, left, filenames)


def _held_back(left: str, not_yet: str) -> Reading | None:
    """A change, a question or a "not (yet)": feedback, whatever else the reply says."""
    found = _CHANGE.search(left)
    if found:
        return Reading(Outcome.FEEDBACK, "change", _around(left, found))
    found = _QUESTION.search(left)
    if found:
        return Reading(Outcome.FEEDBACK, "question", _around(left, found))
    if not_yet:
        return Reading(Outcome.FEEDBACK, "not_yet", not_yet)
    return None


def _unclear(words: str, left: str, filenames: Sequence[str]) -> Reading:
    """No clear yes and nothing held back: a weak yes alone, or a person must judge."""
    weak = _WEAK.search(left)
    if weak:
        rest = _FILLER.sub("", _PARTICLES.sub("", _ACK.sub("", _WEAK.sub("", left))))
        if not rest:
            return Reading(Outcome.CONFIRMED, "yes", weak.group(0))
        return Reading(Outcome.UNSURE, "weak_more", weak.group(0))
    letter = next((n for n in filenames if _FILE_CONFIRMISH.search(n)), None)
    if letter or (filenames and not _FILLER.sub("", _ACK.sub("", left))):
        return Reading(Outcome.UNSURE, "file_only", letter or filenames[0])
    ack = _ACK.search(left)
    if ack:
        return Reading(Outcome.UNSURE, "ack", ack.group(0))
    if not _FILLER.sub("", words):
        return Reading(Outcome.UNSURE, "empty")
    return Reading(Outcome.FEEDBACK, "no_yes")


def _take(pattern: re.Pattern[str], text: str) -> tuple[str, str]:
    """``text`` with every match of ``pattern`` blanked out, and the first match."""
    first = pattern.search(text)
    return pattern.sub(" ", text), (first.group(0).strip() if first else "")


def _around(text: str, m: re.Match[str]) -> str:
    """The clause around a match, for the timeline: up to the punctuation on either side."""
    start = max((text.rfind(c, 0, m.start()) for c in "，,。.;；!！?？\n"), default=-1) + 1
    ends = [i for c in "，,。.;；!！?？\n" if (i := text.find(c, m.end())) >= 0]
    end = min(ends, default=len(text))
    if text[end:end + 1] in ("?", "？"):
        end += 1
    return " ".join(text[start:end].split())[:80] or m.group(0)


def is_confirmation(mail: ParsedMail) -> bool:
    """The reply is a clear confirmation (``read_confirmation`` says ``confirmed``)."""
    return read_confirmation(mail).outcome is Outcome.CONFIRMED

def mentions_delay(text: str) -> bool:
    return bool(_DELAY.search(reply_top(text)))


def explains_delay(text: str) -> bool:
    """The reason and an adjusted plan are both there."""
    top = reply_top(text)
    return all(p.search(top) for p in _EXPLAINED)


def is_invoice(mail: ParsedMail) -> bool:
    return bool(_INVOICE.search(reply_top(mail.text))) or any(
        _INVOICE.search(a.filename) for a in mail.attachments)
