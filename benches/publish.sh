#!/usr/bin/env bash
# Publishing throughput: a 1 GiB image pushed to the local registry (TLS, htpasswd) and to
# Garage (S3), by uforge (the `publish` example over core's publishers) and, in the same run
# against the same servers, by `skopeo copy` and `s3cmd put`. Target: uforge at least 0.8x
# their rate.
#
#   bash benches/publish.sh [SIZE_MIB]     (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
runs=${RUNS:-2}
. benches/lib.sh
work=$(mktemp -d /var/tmp/uforge-bench-publish.XXXXXX)
trap 'bash tests/services/registry.sh stop "$work/reg" || true; bash tests/services/garage.sh stop "$work/garage" || true; rm -rf "$work"' EXIT
cargo build -q --release -p uforge-examples --example publish
pub=target/release/examples/publish

bash tests/services/registry.sh start "$work/reg" > /dev/null
bash tests/services/garage.sh start "$work/garage" > /dev/null
set -a; . "$work/reg/env"; . "$work/garage/env"; set +a

# One image for both: an OCI archive whose single layer is SIZE_MIB of random bytes (a disk
# image compresses no better), and that layer file for S3.
head -c "$((size << 20))" /dev/urandom > "$work/layer.bin"
(cd "$work" && umoci init --layout oci > /dev/null && umoci new --image oci:img > /dev/null \
    && umoci unpack --rootless --image oci:img bundle > /dev/null \
    && cp layer.bin bundle/rootfs/big && umoci repack --image oci:img bundle > /dev/null \
    && tar -C oci -cf img.oci.tar .)

creds="$REGISTRY_USER:$REGISTRY_PASSWORD"
mkdir -p "$work/skopeo-cache" /var/lib/containers/cache
# The commands are built in a subshell (`$(...)`), where a counter would not advance: each names
# its repository by the time it was built, so that no push finds its layer already there.
skopeo_push() {
    # skopeo remembers where it pushed a blob and then mounts it from there instead of
    # uploading it: each push gets an empty cache of its own (a tmpfs over root's, in a mount
    # namespace of its own), as uforge has none.
    echo "unshare --mount --propagation private sh -c 'mount -t tmpfs tmpfs $work/skopeo-cache \
        && mount --bind $work/skopeo-cache /var/lib/containers/cache \
        && exec skopeo copy --quiet --dest-creds $creds --dest-cert-dir $REGISTRY_CERT_DIR \
        oci-archive:$work/img.oci.tar docker://$REGISTRY_HOST/bench/skopeo$(date +%s%N):latest'"
}
uforge_push() {
    echo "UFORGE_TARGET_USER='$REGISTRY_USER' UFORGE_TARGET_PASSWORD='$REGISTRY_PASSWORD' \
        $pub $work/img.oci.tar 'oci://$REGISTRY_HOST/bench/uforge$(date +%s%N):latest?ca=$REGISTRY_CA_FILE'"
}
# Each run pushes to a new repository, so no blob is already there; the registry's storage
# is the same for both.
t_skopeo=999999 t_uforge=999999
for _ in $(seq "$runs"); do
    t=$(runs=1 best "$(skopeo_push)"); (($(echo "$t < $t_skopeo" | bc -l))) && t_skopeo=$t
    t=$(runs=1 best "$(uforge_push)"); (($(echo "$t < $t_uforge" | bc -l))) && t_uforge=$t
done

host=${S3_ENDPOINT#http://}
cat > "$work/s3cfg" <<CFG
[default]
access_key = $S3_ACCESS_KEY_ID
secret_key = $S3_SECRET_ACCESS_KEY
host_base = $host
host_bucket = $host
bucket_location = $S3_REGION
use_https = False
signature_v2 = False
multipart_chunk_size_mb = 16
CFG
t_s3cmd=$(best "s3cmd -c $work/s3cfg --no-progress put $work/layer.bin s3://$S3_BUCKET/s3cmd/layer.bin")
# A key of its own per run (inside the single quotes nothing expands): the same key would find
# the object of the run before already stored, and skip it.
t_us3=$(best "AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$S3_SECRET_ACCESS_KEY \
    $pub $work/layer.bin \"s3://$S3_BUCKET/uforge/layer-\$(date +%s%N).bin?endpoint=$S3_ENDPOINT&region=$S3_REGION\"")

rate() { echo "scale=1; $size / $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
printf 'registry: uforge %s s (%s MiB/s), skopeo copy %s s (%s MiB/s): %sx\n' \
    "$t_uforge" "$(rate "$t_uforge")" "$t_skopeo" "$(rate "$t_skopeo")" "$(ratio "$t_skopeo" "$t_uforge")"
printf 's3:       uforge %s s (%s MiB/s), s3cmd put %s s (%s MiB/s): %sx\n' \
    "$t_us3" "$(rate "$t_us3")" "$t_s3cmd" "$(rate "$t_s3cmd")" "$(ratio "$t_s3cmd" "$t_us3")"
ok=1
(($(echo "$t_skopeo / $t_uforge >= 0.8" | bc -l))) || ok=0
(($(echo "$t_s3cmd / $t_us3 >= 0.8" | bc -l))) || ok=0
[ "$ok" = 1 ] && echo "target met (>= 0.8x)" || { echo "target missed (< 0.8x)"; exit 1; }
