package load

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicks is the unit of /proc's CPU times (USER_HZ), 100 on every
// Linux this runs on.
const clockTicks = 100

// cpuSample is the CPU time used so far: by this process (getrusage), by
// the server when its pid is known, and by the whole machine.
type cpuSample struct {
	at        time.Time
	user, sys time.Duration // this process
	server    time.Duration // -1 when unknown
	busy, all uint64        // machine, in clock ticks; 0 when unknown
}

func sampleCPU(serverPID int) cpuSample {
	s := cpuSample{at: time.Now(), server: -1}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.user = time.Duration(ru.Utime.Nano())
		s.sys = time.Duration(ru.Stime.Nano())
	}
	if serverPID > 0 {
		if d, ok := procCPU(serverPID); ok {
			s.server = d
		}
	}
	s.busy, s.all = machineTicks()
	return s
}

// procCPU is a process's user+system time from /proc/PID/stat.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after its closing one; utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(ut+st) * time.Second / clockTicks, true
}

// machineTicks is the machine's busy and total CPU time from /proc/stat.
func machineTicks() (busy, all uint64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	var idle uint64
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		all += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return all - idle, all
}

// CPU is the CPU used over a window, in cores (CPU seconds per second).
type CPU struct {
	Cores        int     `json:"cores"`
	Client       float64 `json:"client_cores"`
	ClientUser   float64 `json:"client_user_seconds"`
	ClientSys    float64 `json:"client_system_seconds"`
	Server       float64 `json:"server_cores"`  // -1 when unknown
	Machine      float64 `json:"machine_cores"` // -1 when unknown
	WindowSecond float64 `json:"window_seconds"`
}

func cpuBetween(a, b cpuSample) CPU {
	wall := b.at.Sub(a.at).Seconds()
	c := CPU{Cores: runtime.NumCPU(), Server: -1, Machine: -1, WindowSecond: wall,
		ClientUser: (b.user - a.user).Seconds(), ClientSys: (b.sys - a.sys).Seconds()}
	if wall <= 0 {
		return c
	}
	c.Client = (c.ClientUser + c.ClientSys) / wall
	if a.server >= 0 && b.server >= 0 {
		c.Server = (b.server - a.server).Seconds() / wall
	}
	if b.all > a.all {
		c.Machine = float64(b.busy-a.busy) / float64(b.all-a.all) * float64(c.Cores)
	}
	return c
}

// String says it in one line.
func (c CPU) String() string {
	s := fmt.Sprintf("client %.2f cores (user %.1fs, system %.1fs)", c.Client, c.ClientUser, c.ClientSys)
	if c.Server >= 0 {
		s += fmt.Sprintf(", server %.2f cores", c.Server)
	} else {
		s += ", server unknown (not started by the harness; -server-pid names it)"
	}
	if c.Machine >= 0 {
		s += fmt.Sprintf(", machine %.2f of %d cores busy", c.Machine, c.Cores)
		if c.Server >= 0 {
			s += fmt.Sprintf(" (%.2f by other processes)", max(c.Machine-c.Client-c.Server, 0))
		}
	}
	return s
}
