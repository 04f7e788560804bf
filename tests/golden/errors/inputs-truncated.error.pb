
n
SYSTEM`DecodeError: Error parsing message with type 'flyteidl.core.LiteralMap': Wire format was corrupt 