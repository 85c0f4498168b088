"""Tools and JSON Schemas for the guided-decoding tests, on the inference and the API side.

Every object is closed (``additionalProperties: false``, as OpenAI's strict mode requires)
and every string and number bounded (numbers are bounded integers: a JSON number's digits
have no limit): an open object lets a model that knows nothing of weather add keys without
end, so a call would finish by luck, not by the grammar.
"""

from __future__ import annotations

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {
                    "type": "string",
                    "description": "The city and state, e.g. San Francisco, CA",
                    "maxLength": 40,
                },
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
            "additionalProperties": False,
        },
    },
}
INVENTORY = {
    "type": "function",
    "function": {
        "name": "record_inventory",
        "description": "Record the objects seen in a picture",
        "parameters": {
            "type": "object",
            "properties": {
                "room": {
                    "type": "object",
                    "properties": {"indoor": {"type": "boolean"}},
                    "required": ["indoor"],
                    "additionalProperties": False,
                },
                "items": {
                    "type": "array",
                    "maxItems": 3,
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "maxLength": 10},
                            "count": {"type": "integer", "minimum": 1, "maximum": 99},
                            "condition": {"enum": ["new", "used", "broken"]},
                        },
                        "required": ["name", "count"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["room", "items"],
            "additionalProperties": False,
        },
    },
}
TOOLS = [WEATHER, INVENTORY]
PARAMETERS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}

DETECTIONS = {
    "type": "object",
    "properties": {
        "objects": {
            "type": "array",
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "label": {"type": "string", "maxLength": 12},
                    "kind": {"enum": ["animal", "thing", "person"]},
                    "box": {  # in thousandths of the picture, as Qwen2-VL writes boxes
                        "type": "array",
                        "items": {"type": "integer", "minimum": 0, "maximum": 1000},
                        "minItems": 4,
                        "maxItems": 4,
                    },
                },
                "required": ["label", "kind", "box"],
                "additionalProperties": False,
            },
        },
        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},  # per cent
    },
    "required": ["objects", "confidence"],
    "additionalProperties": False,
}
CAPTION = {
    "type": "object",
    "properties": {
        "caption": {"type": "string", "maxLength": 30},
        "tags": {
            "type": "array",
            "items": {"enum": ["day", "night", "indoor", "outdoor"]},
            "maxItems": 2,
        },
        "people": {"type": "integer", "minimum": 0, "maximum": 20},
    },
    "required": ["caption", "tags", "people"],
    "additionalProperties": False,
}
