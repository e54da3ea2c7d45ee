# checks.image-vm: the image in a real Docker daemon, in a NixOS VM (needs KVM on the builder:
# system feature `kvm`/`nixos-test`). docker load, run with a non-default PORT, curl both routes,
# `docker stop` and require exit code 0 well inside Cloud Run's 10 s SIGTERM grace.
{
  testers,
  curl,
  image,
}:
let
  ref = "${image.imageName}:${image.imageTag}";
in
testers.runNixOSTest {
  name = "${image.imageName}-image";

  nodes.machine = {
    virtualisation = {
      docker.enable = true;
      # Room for /var/lib/docker; the image itself is a few MB.
      diskSize = 2048;
      memorySize = 1024;
    };
    environment.systemPackages = [ curl ];
  };

  # PORT=9090 inside, published on 8080: proves the service honours $PORT instead of a
  # hard-coded 8080. `docker stop --time 10` mirrors Cloud Run (SIGTERM, SIGKILL after 10 s);
  # a SIGKILL would show as exit code 137.
  testScript = ''
    import time

    machine.wait_for_unit("sockets.target")
    machine.succeed("docker load --input=${image}")
    machine.succeed("docker image inspect ${ref}")
    machine.succeed("docker run -d --name svc -e PORT=9090 -p 8080:9090 ${ref}")
    machine.wait_until_succeeds("curl -fsS http://127.0.0.1:8080/health | grep -qx ok", timeout=60)
    machine.succeed("curl -fsS -o /dev/null http://127.0.0.1:8080/")
    user = machine.succeed("docker inspect --format '{{.Config.User}}' svc").strip()
    assert user == "65534:65534", f"container runs as {user!r}"
    # Binary-only: there is no shell to exec into.
    machine.fail("docker exec svc /bin/sh -c true")

    start = time.monotonic()
    machine.succeed("docker stop --time 10 svc")
    elapsed = time.monotonic() - start
    code = machine.succeed("docker inspect --format '{{.State.ExitCode}}' svc").strip()
    print(f"docker stop took {elapsed:.2f} s, exit code {code}")
    assert code == "0", f"exit code {code} after docker stop (137 = SIGKILL after the grace period)"
    assert elapsed < 10, f"docker stop took {elapsed:.2f} s"
  '';
}
