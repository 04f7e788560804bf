
z
SYSTEMlDecodeError: Error parsing message with type 'flyteidl.core.LiteralMap': Exceeded upb_DecodeOptions_MaxDepth 