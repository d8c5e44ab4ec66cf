# A NixOS-style test script: runs unchanged under the reference driver and ours.
start_all()
machine.wait_until_succeeds("test -d /tmp")

with subtest("the backdoor shell answers"):
    assert machine.succeed("echo hello") == "hello\n"
    status, out = machine.execute("uname -s; exit 3")
    assert (status, out) == (3, "Linux\n"), (status, out)

with subtest("failing commands are caught"):
    machine.fail("false")

machine.shutdown()
