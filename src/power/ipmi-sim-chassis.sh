#!/bin/sh
# chassis_control program for OpenIPMI's ipmi_sim: the "chassis" is a QEMU process (docs/power.md).
#
# lan.conf:  chassis_control "/path/ipmi-sim-chassis.sh <state dir>"
# ipmi_sim runs it as:
#   ipmi-sim-chassis.sh <dir> get power|boot ...        prints "<parm>:<value>" per parm
#   ipmi-sim-chassis.sh <dir> set power 0|1 | reset 1 | boot none|pxe|default|cdrom|bios ...
# ipmi_sim maps "chassis bootdev disk" to boot "default"; it does not pass the persistent bit.
#
# Power is on exactly when the QEMU process named in <dir>/qemu.pid is alive and its command line
# names this directory. Power on starts QEMU with -boot order=n after "boot pxe", order=c otherwise:
# the argv in <dir>/launch (one argument per line) when that file exists, else an empty machine.
# Test switches (files in <dir>):
#   refuse      set power/reset are acknowledged but ignored (a chassis that does not obey)
#   fail-count  holds N: the next N set commands fail (exit 1, the BMC answers with an error)
# Every call is appended to <dir>/calls.log.
#
# ipmi_sim reads this program's stdout until EOF, so QEMU must not inherit it: its output goes to
# <dir>/qemu.log.
dir=$1
op=$2
[ -n "$dir" ] && [ -d "$dir" ] || { echo "state directory '$dir' missing"; exit 1; }
shift 2

log() { echo "$(date +%s.%N) $*" >> "$dir/calls.log"; }

qemu_pid() {
  pid=$(cat "$dir/qemu.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] || return 1
  # A zombie has an empty cmdline; a reused PID names another directory.
  tr '\000' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$dir/qemu.pid" || return 1
  echo "$pid"
}

power_on() {
  qemu_pid > /dev/null && return 0
  rm -f "$dir/qemu.pid"
  case $(cat "$dir/boot" 2>/dev/null) in
    pxe) order=n ;;
    *) order=c ;;
  esac
  if [ -s "$dir/launch" ]; then
    # The machine given by the test or lab (one argument per line).
    set --
    while IFS= read -r a; do set -- "$@" "$a"; done < "$dir/launch"
    setsid "$@" -boot "order=$order" -pidfile "$dir/qemu.pid" < /dev/null >> "$dir/qemu.log" 2>&1 &
  else
    # A machine that runs nothing: no disk, no NIC, CPUs stopped (-S). TCG: KVM is unusable here.
    setsid qemu-system-x86_64 -nodefaults -machine pc -accel tcg -m 32 -display none -S \
      -serial null -monitor none -no-reboot -boot "order=$order" \
      -name "ipmi-sim-chassis" -pidfile "$dir/qemu.pid" \
      < /dev/null >> "$dir/qemu.log" 2>&1 &
  fi
  i=0
  while ! qemu_pid > /dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then echo "QEMU did not start; see $dir/qemu.log"; return 1; fi
    sleep 0.05
  done
  log "started qemu pid $(qemu_pid) boot order=$order"
}

power_off() {
  pid=$(qemu_pid) || return 0
  kill -TERM "$pid" 2>/dev/null
  i=0
  while qemu_pid > /dev/null; do
    i=$((i + 1))
    if [ $i -eq 40 ]; then kill -KILL "$pid" 2>/dev/null; fi
    if [ $i -gt 80 ]; then echo "QEMU pid $pid does not die"; return 1; fi
    sleep 0.05
  done
  log "stopped qemu pid $pid"
}

case $op in
  get)
    for parm in "$@"; do
      case $parm in
        power) if qemu_pid > /dev/null; then v=1; else v=0; fi ;;
        boot) v=$(cat "$dir/boot" 2>/dev/null || echo default) ;;
        *) echo "Invalid parameter: $parm"; exit 1 ;;
      esac
      log "get $parm -> $v"
      echo "$parm:$v"
    done
    ;;
  set)
    log "set $*"
    n=$(cat "$dir/fail-count" 2>/dev/null || echo 0)
    if [ "$n" -gt 0 ] 2>/dev/null; then
      echo $((n - 1)) > "$dir/fail-count"
      log "failing as asked (fail-count was $n)"
      echo "chassis failure injected"
      exit 1
    fi
    while [ $# -gt 0 ]; do
      parm=$1
      val=$2
      [ -n "$val" ] || { echo "No value present for parameter $parm"; exit 1; }
      shift 2
      case $parm in
        power|reset)
          if [ -e "$dir/refuse" ]; then log "refused $parm $val"; continue; fi
          if [ "$parm" = reset ]; then
            qemu_pid > /dev/null && { power_off && power_on || exit 1; }
          elif [ "$val" = 1 ]; then
            power_on || exit 1
          else
            power_off || exit 1
          fi
          ;;
        boot)
          case $val in
            none|pxe|default|cdrom|bios) echo "$val" > "$dir/boot" ;;
            *) echo "Invalid boot value: $val"; exit 1 ;;
          esac
          ;;
        identify) shift 1 2>/dev/null ;;  # interval, then a force flag
        *) echo "Invalid parameter: $parm"; exit 1 ;;
      esac
    done
    ;;
  check) exit 1 ;;  # not supported for chassis control
  *) echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
