
ÿÿÿ not protobuf