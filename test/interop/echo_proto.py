"""The Echo messages of src/demo/echo.proto, encoded and decoded by hand.

Debian's python3-grpcio is all the interop scripts need: no protoc, no
generated code, no protobuf runtime. Only the fields Echo uses are handled.
"""


def _varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data, at):
    value = 0
    shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data):
    """Yields (field number, value) for varint and length-delimited fields."""
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _read_varint(data, at)
        elif wire == 2:
            length, at = _read_varint(data, at)
            value = bytes(data[at:at + length])
            at += length
        else:
            raise ValueError(f"unexpected wire type {wire} for field {number}")
        yield number, value


# EchoRequest: payload = 1 (bytes), delay_ms = 2, fail_code = 3, fail_message = 4 (string),
# count = 5, response_bytes = 6.
_REQUEST = {"payload": (1, "bytes"), "delay_ms": (2, "int"), "fail_code": (3, "int"),
            "fail_message": (4, "str"), "count": (5, "int"), "response_bytes": (6, "int")}
# EchoResponse: payload = 1 (bytes), backend = 2 (string), sequence = 3, received_bytes = 4,
# metadata = 5 (repeated string).
_RESPONSE = {"payload": (1, "bytes"), "backend": (2, "str"), "sequence": (3, "int"),
             "received_bytes": (4, "int"), "metadata": (5, "repeated")}


def _encode(message, schema):
    out = bytearray()
    for name, (number, kind) in schema.items():
        value = message.get(name)
        if value is None or value == 0 or value == b"" or value == "" or value == []:
            continue
        if kind == "int":
            out += _varint(number << 3) + _varint(value)
        elif kind == "repeated":
            for item in value:
                data = item.encode()
                out += _varint(number << 3 | 2) + _varint(len(data)) + data
        else:
            data = value.encode() if kind == "str" else value
            out += _varint(number << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def _decode(data, schema):
    by_number = {number: (name, kind) for name, (number, kind) in schema.items()}
    message = {name: ([] if kind == "repeated" else (b"" if kind == "bytes" else "" if kind == "str" else 0))
               for name, (_, kind) in schema.items()}
    for number, value in _fields(data):
        if number not in by_number:
            continue
        name, kind = by_number[number]
        if kind == "repeated":
            message[name].append(value.decode())
        elif kind == "str":
            message[name] = value.decode()
        else:
            message[name] = value
    return message


def encode_request(message):
    return _encode(message, _REQUEST)


def decode_request(data):
    return _decode(data, _REQUEST)


def encode_response(message):
    return _encode(message, _RESPONSE)


def decode_response(data):
    return _decode(data, _RESPONSE)
