"""The default model's chat format: ChatML, Hermes-style tools, numbered pictures.

One place for what the training data and the serving template must agree on: the special
tokens (added to the tokenizer as one token each), the context length, and the chat
template every checkpoint the project builds ships with.
"""

from __future__ import annotations

CONTEXT_LENGTH = 4096

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"]
ADDED_TOKENS = ["<tool_call>", "</tool_call>"]

# ChatML with Hermes/Qwen-style tools: the format the Qwen tool-call parser expects. Each
# picture is numbered as Qwen2-VL's template numbers them ("Picture 2: <image>"), so a
# model can tell which image a question means.
CHAT_TEMPLATE = r"""
{%- set pictures = namespace(count=0) -%}
{%- macro render(content) -%}
{%- if content is string -%}{{ content }}
{%- elif content -%}
{%- for part in content -%}
{%- if part.type == 'text' -%}{{ part.text }}
{%- elif part.type == 'image' or part.type == 'image_url' -%}
{%- set pictures.count = pictures.count + 1 -%}
Picture {{ pictures.count }}: <image>
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endmacro -%}
{%- set ns = namespace(system='') -%}
{%- if messages and messages[0].role == 'system' -%}
{%- set ns.system = render(messages[0].content) -%}
{%- set messages = messages[1:] -%}
{%- endif -%}
{%- if tools -%}
<|im_start|>system
{% if ns.system %}{{ ns.system }}

{% endif %}# Tools

You may call one or more functions to assist with the user query.

You are provided with function signatures within <tools></tools> XML tags:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>

For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
<tool_call>
{"name": <function-name>, "arguments": <args-json-object>}
</tool_call><|im_end|>
{% elif ns.system -%}
<|im_start|>system
{{ ns.system }}<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message.role == 'tool' -%}
<|im_start|>user
<tool_response>
{{ render(message.content) }}
</tool_response><|im_end|>
{% elif message.role == 'assistant' -%}
<|im_start|>assistant
{{ render(message.content) }}
{%- for call in message.tool_calls or [] -%}
{% if not loop.first or message.content %}
{% endif %}<tool_call>
{"name": {{ call.function.name | tojson }}, "arguments": {{ call.function.arguments }}}
</tool_call>
{%- endfor -%}
<|im_end|>
{% else -%}
<|im_start|>{{ message.role }}
{{ render(message.content) }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
""".strip()
