
™
SYSTEMùTypeTransformerFailedError: Error converting input 'a':
Literal value: scalar {
  primitive {
    string_value: "one"
  }
}

Expected Python type: <class 'int'>
Exception: Cannot convert literal Flyte Serialized object (Literal):
  scalar:
    primitive:
      string_value: one to int 