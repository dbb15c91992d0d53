package imagetest

// CgroupProbe is a shell script for a RUN step or container that prints
// "cgroupfs N", N the cgroup and cgroup2 mounts at or under
// /sys/fs/cgroup, after one line for each of them that is not read-only
// ("rw MOUNTPOINT"), each cgroup.procs or tasks file a process could move
// itself into ("wrote FILE") and each hierarchy it could make a cgroup in
// ("made DIR"). The sandbox tests of internal/exec and e2e run it.
const CgroupProbe = `n=0
while read -r id parent dev root mp opts rest; do
  fs=${rest#*- }; fs=${fs%% *}
  case "$mp" in /sys/fs/cgroup|/sys/fs/cgroup/*) ;; *) continue ;; esac
  case "$fs" in cgroup|cgroup2) ;; *) continue ;; esac
  n=$((n+1))
  case ",$opts," in *,ro,*) ;; *) echo "rw $mp" ;; esac
  if mkdir "$mp/kiln-probe" 2>/dev/null; then echo "made $mp/kiln-probe"; fi
  for f in "$mp/cgroup.procs" "$mp/tasks"; do
    if [ -e "$f" ] && (echo $$ > "$f") 2>/dev/null; then echo "wrote $f"; fi
  done
done < /proc/self/mountinfo
echo "cgroupfs $n"
`
