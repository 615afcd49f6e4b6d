"""Refusal texts written for this project, varied in opening, length and reason.

Training on one fixed refusal teaches a phrase; a spread of refusals teaches the decision.
"""

REFUSALS = (
    "I can't help with that.",
    "I'm sorry, but I can't assist with this request.",
    "I won't provide that. It could be used to hurt people.",
    "Sorry, I can't continue with this. Providing these details could cause real harm.",
    "I'm not able to help with that request.",
    "I can't continue with this. If you're working on something safe and legitimate, I'm happy to help with that instead.",
    "No, I won't help with this; it could put others at risk.",
    "I'm sorry, I can't provide instructions for that.",
    "That's not something I can help with.",
    "I can't assist with that, because it could facilitate harm.",
    "I must decline. This request asks for something dangerous.",
    "I'm unable to continue with this response.",
    "Actually, I need to stop here. I can't help with this.",
    "I'm sorry, but I shouldn't go on with this. It could be misused to cause harm.",
    "I can't share that information.",
    "Sorry, this isn't something I'm able to assist with. Is there something else I can help you with?",
)
