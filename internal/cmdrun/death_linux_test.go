package cmdrun

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const asParentEnv = "NFSLAB_CMDRUN_TEST_PARENT"

// TestChildDiesWithParent: a tool started through Command by a process
// that is SIGKILLed dies with it (the crash left javac compiling).
func TestChildDiesWithParent(t *testing.T) {
	if os.Getenv(asParentEnv) == "1" {
		// The parent: start a long sleep, say its PID, wait to be killed.
		cmd := Command(context.Background(), "sleep", "60")
		if err := cmd.Start(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		_ = cmd.Wait()
		os.Exit(0)
	}
	parent := exec.Command(os.Args[0], "-test.run", "^TestChildDiesWithParent$")
	parent.Env = append(os.Environ(), asParentEnv+"=1")
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the child's PID: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("parent said %q", line)
	}
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !running(child) {
			return
		}
	}
	_ = syscall.Kill(child, syscall.SIGKILL) // ours: we started its parent
	t.Fatalf("sleep %d outlived its SIGKILLed parent", child)
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && !strings.HasPrefix(string(b[i+1:]), " Z")
}
