#!/usr/bin/python3
"""`make stress`: every race and concurrency test, N times each (default 50), and each test's
failure count. The tests are the built test binaries run one test at a time (`--exact`), from
their package's directory as `cargo test` runs them; a failed run's output is kept in
target/stress/. Exit 1 if any run failed.

    stress.py CARGO TARGET_DIR N [FILTER]

FILTER (a substring of a test's name) runs only the matching tests.
"""
import json
import os
import subprocess
import sys
import time

# (cargo package, test target, test): the kernel races, the holders of a desktop store, the
# journal's listings and checkpoints, the concurrency tests, the faults (kill -9 mid-write) and
# the daemon's parallel clients.
TESTS = [
    ("keyringrs-tests", "kernel", "lock_racing_a_reader_never_yields_partial_data"),
    ("keyringrs-tests", "kernel", "a_key_being_installed_is_never_found_before_its_final_permissions"),
    ("keyringrs-tests", "kernel", "a_key_invalidated_between_the_search_and_the_read_reads_as_locked"),
    ("keyringrs-tests", "kernel", "a_half_installed_key_reads_as_locked_and_lock_removes_it"),
    ("keyringrs-tests", "kernel", "two_sessions_of_one_user_lock_independently"),
    ("keyringrs-tests", "kernel", "a_key_planted_by_another_uid_is_refused_and_lock_removes_it"),
    ("keyringrs-tests", "pam_desktop", "overlapping_graphical_logins_lock_only_when_the_last_closes_in_either_order"),
    ("keyringrs-tests", "pam_desktop", "a_killed_graphical_login_stops_holding_the_store_at_the_next_logout"),
    ("keyringrs-tests", "pam_desktop", "a_killed_graphical_login_stops_holding_the_store_at_once_whatever_keeps_its_keyring"),
    ("keyringrs-tests", "pam_desktop", "the_secret_service_daemon_locks_a_store_whose_only_holder_was_killed"),
    ("keyringrs-tests", "pam_desktop", "keyringrs_lock_from_one_session_locks_every_login"),
    ("keyringrs-tests", "sshd", "overlapping_ssh_logins_with_scope_user_hold_the_store_until_the_last_logout"),
    ("keyringrs-tests", "journal", "listings_racing_checkpoints_see_every_entry"),
    ("keyringrs-tests", "journal", "a_checkpoint_keeps_the_writers_memory_current"),
    ("keyringrs-tests", "journal", "a_full_journal_checkpoints_by_itself_and_loses_nothing"),
    ("keyringrs-tests", "concurrency", "eight_writers_and_four_readers_for_ten_seconds_lose_nothing"),
    ("keyringrs-tests", "concurrency", "threads_sharing_one_store_list_completely_and_write_exclusively"),
    ("keyringrs-tests", "concurrency", "a_get_after_a_set_in_another_process_returns_the_new_value"),
    ("keyringrs-tests", "concurrency", "a_remembered_serial_of_another_key_fails_closed_and_is_searched_again"),
    ("keyringrs-tests", "faults", "kill_9_of_a_writer_never_breaks_the_store"),
    ("keyringrs-tests", "faults", "kill_9_during_a_master_key_rotation_never_loses_an_entry"),
    ("keyringrs-tests", "faults", "a_handle_that_remembers_the_old_header_writes_nothing_after_a_rotation"),
    ("keyringrs-secret-service", "limits", "parallel_clients_on_500_items_see_every_item_and_no_spurious_deletions"),
    ("keyringrs-secret-service", "limits", "a_clients_sessions_and_prompts_go_when_it_leaves"),
    ("keyringrs-secret-service", "secret_service", "load_8_clients_x_500_lookups"),
]


def build(cargo):
    """The test binaries by (package, target), and each package's directory."""
    packages = sorted({p for p, _, _ in TESTS})
    cmd = [cargo, "test", "--locked", "--no-run", "--message-format=json"]
    for p in packages:
        cmd += ["-p", p]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    binaries, dirs = {}, {}
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if "test" not in msg["target"]["kind"]:
            continue
        name = msg["package_id"]
        package = next((p for p in packages if f"/{p}#" in name or f"#{p}@" in name
                        or name.startswith(f"{p} ")), None)
        if package is None:
            continue
        binaries[(package, msg["target"]["name"])] = msg["executable"]
        dirs[package] = os.path.dirname(msg["manifest_path"])
    return binaries, dirs


def main():
    cargo, target, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    only = sys.argv[4] if len(sys.argv) > 4 else ""
    tests = [t for t in TESTS if only in t[2]]
    # The end-to-end tests run the built binaries (keyringrs, the daemon, the PAM module).
    subprocess.run([cargo, "build", "--locked", "--workspace"], check=True)
    binaries, dirs = build(cargo)
    logs = os.path.join(target, "stress")
    os.makedirs(logs, exist_ok=True)
    env = dict(os.environ, KEYRINGRS_REQUIRE_DBUS="1")
    results = []
    started = time.monotonic()
    for package, tgt, test in tests:
        exe = binaries.get((package, tgt))
        if exe is None:
            sys.exit(f"stress: no test binary for {package} --test {tgt}")
        failed, times = 0, []
        for i in range(n):
            t0 = time.monotonic()
            r = subprocess.run([exe, "--exact", test, "--test-threads=1"], cwd=dirs[package],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL)
            times.append(time.monotonic() - t0)
            ran = b"1 passed" in r.stdout
            if r.returncode != 0 or not ran:
                failed += 1
                with open(os.path.join(logs, f"{test}.{i}.log"), "wb") as f:
                    f.write(r.stdout)
        times.sort()
        results.append((failed, tgt, test, times[len(times) // 2]))
        print(f"stress: {failed}/{n} failed  {tgt}::{test}  (median {times[len(times) // 2]:.2f} s)",
              flush=True)
    total = sum(f for f, _, _, _ in results)
    print(f"\nstress: {len(results)} tests x {n} runs in {time.monotonic() - started:.0f} s: "
          f"{total} failed run(s)")
    for failed, tgt, test, _ in results:
        if failed:
            print(f"  {failed}/{n}  {tgt}::{test}  (logs: {logs}/{test}.*.log)")
    sys.exit(1 if total else 0)


if __name__ == "__main__":
    main()
