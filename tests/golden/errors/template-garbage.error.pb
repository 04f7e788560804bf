
y
USER:RuntimeErrorbDecodeError: Error parsing message with type 'flyteidl.core.TaskTemplate': Wire format was corrupt 