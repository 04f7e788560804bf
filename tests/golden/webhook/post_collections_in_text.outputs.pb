
ö
infoí
êç
Û„«status_codeÌÈ­response_data¢okªinput_data‡¢xs«<[1, 2, 3]>¥names®<['x', 'y z']>¡dÙN<{"z": 1, "a": [1, 2.5, "x"], "n": null, "ok": true, "deep": {"y": "\u00e9"}}>¦nested¶<[{'a': 1}, {'b': 2}]>¢m1«<{'k': 10}>¥mlist³<{'k': [1.0, 2.5]}>¢dcÙM<{"name": "p", "count": 3, "ratio": 0.5, "tags": ["t1", "t2"], "when": null}>£url»http://127.0.0.1:39057/hookmsgpack