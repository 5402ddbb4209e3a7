"""The page's words in Chinese and English, and the choice of language for a request."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "html_lang": "zh-CN",
        "service": "客户服务",
        "title": "提交服务请求",
        "intro": "请描述您遇到的问题或需求，我们会立即生成服务单号，并按紧急程度尽快与您联系。",
        "required_note": "带 * 的为必填项。",
        "name": "姓名",
        "company": "公司名称",
        "email": "电子邮箱",
        "email_hint": "服务单确认将发送到此邮箱",
        "phone": "联系电话",
        "either": "邮箱或电话至少填一项",
        "phone_hint": "例如 138 1234 5678",
        "type": "问题类型",
        "type_auto": "不确定，由系统判断",
        "type_inquiry": "咨询",
        "type_complaint": "投诉",
        "type_fault": "故障",
        "type_request": "需求",
        "type_suggestion": "建议",
        "subject": "主题",
        "subject_hint": "一句话概括，例如：打印机无法连接网络",
        "message": "详细描述",
        "message_hint": "发生了什么、何时开始、影响范围、已尝试的方法",
        "attachments": "附件",
        "attachments_hint": "可上传截图或文档，每个文件不超过 {max}；支持{types}",
        "submit": "提交",
        "reattach": "出于安全原因，浏览器不会保留已选择的文件，请重新选择附件。",
        "errors_title": "请修改标出的项目后重新提交。",
        "switch": "English",
        "thanks_title": "已收到您的请求",
        "thanks_ref": "您的服务单号",
        "thanks_body": "请保存此单号，后续沟通时注明即可。",
        "thanks_email": "确认邮件将发送至 {email}，回复该邮件即可补充信息。",
        "thanks_phone": "我们将通过电话 {phone} 与您联系。",
        "thanks_queued": "您的请求已安全保存，我们会尽快与您联系并告知服务单号。",
        "thanks_again": "提交新的请求",
        "csrf": "页面已过期，请重新提交（您填写的内容已保留）。",
        "rate": "提交过于频繁，请 {seconds} 秒后再试。",
        "too_large": "提交内容过大（最大 {max}），请减少或压缩附件后重试。",
        "privacy": "您提供的信息仅用于处理本次服务请求。",
    },
    "en": {
        "html_lang": "en",
        "service": "Customer service",
        "title": "Submit a support request",
        "intro": "Tell us about your problem or request. You get a ticket number at once, and we get back to you as fast as its urgency requires.",
        "required_note": "Fields marked * are required.",
        "name": "Name",
        "company": "Company",
        "email": "Email",
        "email_hint": "We send the ticket confirmation here",
        "phone": "Phone",
        "either": "email or phone required",
        "phone_hint": "e.g. +86 138 1234 5678",
        "type": "Type of request",
        "type_auto": "Not sure – let us decide",
        "type_inquiry": "Question",
        "type_complaint": "Complaint",
        "type_fault": "Fault",
        "type_request": "Feature request",
        "type_suggestion": "Suggestion",
        "subject": "Subject",
        "subject_hint": "e.g. Printer offline since 9:00",
        "message": "Details",
        "message_hint": "What happened, since when, who is affected, what you tried",
        "attachments": "Attachments",
        "attachments_hint": "Screenshots or documents, up to {max} each: {types}",
        "submit": "Submit",
        "reattach": "For your security, browsers do not keep chosen files; please choose your attachments again.",
        "errors_title": "Please correct the marked fields and submit again.",
        "switch": "中文",
        "thanks_title": "We have your request",
        "thanks_ref": "Your ticket number",
        "thanks_body": "Please keep this number and mention it when you contact us about this request.",
        "thanks_email": "A confirmation is on its way to {email}; reply to it to add anything.",
        "thanks_phone": "We will call you on {phone}.",
        "thanks_queued": "Your request is safely stored; we will contact you shortly with its ticket number.",
        "thanks_again": "Submit another request",
        "csrf": "This page had expired; please submit again (what you wrote is kept).",
        "rate": "Too many submissions; please try again in {seconds} seconds.",
        "too_large": "The submission is too large (at most {max}); please send fewer or smaller attachments.",
        "privacy": "What you give us is used only to handle this request.",
    },
}


def choose_language(query_lang: str | None, accept_language: str | None, default: str = "zh") -> str:
    """?lang= first, then the browser's Accept-Language preference order, then the default."""
    if query_lang and query_lang.lower()[:2] in TEXTS:
        return query_lang.lower()[:2]
    if accept_language:
        ranked: list[tuple[float, int, str]] = []
        for i, item in enumerate(accept_language.split(",")):
            tag, _, params = item.strip().partition(";")
            q = 1.0
            if params.strip().startswith("q="):
                try:
                    q = float(params.strip()[2:])
                except ValueError:
                    q = 0.0
            ranked.append((-q, i, tag.strip().lower()[:2]))
        for _, _, lang in sorted(ranked):
            if lang in TEXTS:
                return lang
    return default if default in TEXTS else "zh"


KIND_GROUPS = (  # how the accepted extensions are named to a customer
    ({"png", "jpg", "jpeg", "gif", "webp"}, {"zh": "图片", "en": "images"}),
    ({"pdf"}, {"zh": "PDF", "en": "PDF"}),
    ({"doc", "docx", "xls", "xlsx", "ppt", "pptx"}, {"zh": "Office 文档", "en": "Office documents"}),
    ({"txt", "csv", "log", "md"}, {"zh": "文本文件", "en": "text files"}),
    ({"zip"}, {"zh": "ZIP 压缩包", "en": "ZIP archives"}),
)


def describe_kinds(extensions: tuple[str, ...], lang: str) -> str:
    """ "图片、PDF、Office 文档和 ZIP 压缩包" rather than a list of extensions."""
    names = [label[lang] for group, label in KIND_GROUPS if group & set(extensions)]
    known = set().union(*(group for group, _ in KIND_GROUPS))
    names += [e.upper() for e in extensions if e not in known]
    if len(names) <= 1:
        return "".join(names)
    if lang == "zh":
        last = names[-1]
        return "、".join(names[:-1]) + ("和 " if last[0].isascii() else "和") + last
    return ", ".join(names[:-1]) + " and " + names[-1]
