"""Decodes a gzipped pprof file with the protobuf runtime (not pyprobe's code) and prints, as
JSON, its sample types, period, and each function's samples with it anywhere on the stack.

The message types are declared here from pprof's proto/profile.proto (field numbers and
types of the messages pyprobe writes); the protobuf library does the parsing and rejects
malformed input. usage: check_pprof.py FILE"""
import gzip
import json
import sys

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
MESSAGES = {
    "ValueType": [("type", 1, F.TYPE_INT64, False), ("unit", 2, F.TYPE_INT64, False)],
    "Label": [("key", 1, F.TYPE_INT64, False), ("str", 2, F.TYPE_INT64, False),
              ("num", 3, F.TYPE_INT64, False), ("num_unit", 4, F.TYPE_INT64, False)],
    "Sample": [("location_id", 1, F.TYPE_UINT64, True), ("value", 2, F.TYPE_INT64, True),
               ("label", 3, ".perftools.profiles.Label", True)],
    "Line": [("function_id", 1, F.TYPE_UINT64, False), ("line", 2, F.TYPE_INT64, False)],
    "Location": [("id", 1, F.TYPE_UINT64, False), ("mapping_id", 2, F.TYPE_UINT64, False),
                 ("address", 3, F.TYPE_UINT64, False), ("line", 4, ".perftools.profiles.Line", True)],
    "Function": [("id", 1, F.TYPE_UINT64, False), ("name", 2, F.TYPE_INT64, False),
                 ("system_name", 3, F.TYPE_INT64, False), ("filename", 4, F.TYPE_INT64, False),
                 ("start_line", 5, F.TYPE_INT64, False)],
    "Profile": [("sample_type", 1, ".perftools.profiles.ValueType", True),
                ("sample", 2, ".perftools.profiles.Sample", True),
                ("location", 4, ".perftools.profiles.Location", True),
                ("function", 5, ".perftools.profiles.Function", True),
                ("string_table", 6, F.TYPE_STRING, True),
                ("time_nanos", 9, F.TYPE_INT64, False), ("duration_nanos", 10, F.TYPE_INT64, False),
                ("period_type", 11, ".perftools.profiles.ValueType", False),
                ("period", 12, F.TYPE_INT64, False)],
}


def profile_class():
    fd = descriptor_pb2.FileDescriptorProto(name="profile.proto", package="perftools.profiles", syntax="proto3")
    for name, fields in MESSAGES.items():
        m = fd.message_type.add(name=name)
        for fname, number, kind, repeated in fields:
            f = m.field.add(name=fname, number=number,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if isinstance(kind, str):
                f.type, f.type_name = F.TYPE_MESSAGE, kind
            else:
                f.type = kind
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("perftools.profiles.Profile"))


def main(path):
    p = profile_class()()
    p.ParseFromString(gzip.open(path).read())
    s = p.string_table
    assert s[0] == "", "string_table[0] must be empty"
    functions = {f.id: s[f.name] for f in p.function}
    locations = {l.id: [functions[line.function_id] for line in l.line] for l in p.location}
    total, by_function = 0, {}
    for sample in p.sample:
        n = sample.value[0]
        total += n
        names = {name for lid in sample.location_id for name in locations[lid]}
        for name in names:
            by_function[name] = by_function.get(name, 0) + n
    print(json.dumps({
        "sample_types": [[s[t.type], s[t.unit]] for t in p.sample_type],
        "period_type": [s[p.period_type.type], s[p.period_type.unit]],
        "period": p.period,
        "duration_nanos": p.duration_nanos,
        "samples": total,
        "functions": by_function,
        "labels": sorted({s[l.key] for x in p.sample for l in x.label}),
    }))


main(sys.argv[1])
