package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nfslab/nfslab/pkg/clock"
	"github.com/nfslab/nfslab/pkg/scenario"
	"github.com/nfslab/nfslab/pkg/vm"
	vmassets "github.com/nfslab/nfslab/vm"
)

// vmFlags are the options the vm subcommands share.
type vmFlags struct {
	cacheDir string
	mirror   string
	guest    string
	diskMB   int
	memoryMB int
	cpus     int
	accel    string
	kernel   string
}

func (f *vmFlags) addImage(cmd *cobra.Command, defaultGuest string) {
	var about []string
	for _, g := range vm.Guests() {
		about = append(about, g.Suite+" ("+g.About+")")
	}
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", vm.DefaultCacheDir, "image cache directory")
	cmd.Flags().StringVar(&f.mirror, "mirror", "", "Debian mirror for debootstrap (default: the machine's apt configuration)")
	cmd.Flags().StringVar(&f.guest, "guest", defaultGuest, "guest flavour: "+strings.Join(about, " or "))
	cmd.Flags().IntVar(&f.diskMB, "disk-mb", 4096, "size of the guest's (sparse) root disk in MiB")
}

func (f *vmFlags) addBoot(cmd *cobra.Command) {
	d := vm.DefaultBoot()
	cmd.Flags().IntVar(&f.memoryMB, "memory", d.MemoryMB, "guest memory in MiB")
	cmd.Flags().IntVar(&f.cpus, "cpus", d.CPUs, "guest vCPUs")
	cmd.Flags().StringVar(&f.accel, "accel", d.Accel, "accelerator: auto (KVM when it boots, else TCG), kvm, tcg")
}

func (f *vmFlags) addKernel(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.kernel, "kernel", vm.KernelDebian, "guest kernel: debian (the image's own) or localio (built from Debian's linux-source with CONFIG_NFS_LOCALIO=y by `nfslab vm kernel`, cached)")
}

// kernelBuilder is the LOCALIO kernel's builder: the source comes from
// the same Debian mirror as the image, read from the apt configuration
// for the kernel's suite unless --mirror names one.
func (f *vmFlags) kernelBuilder(g *globals, spec vm.KernelSpec) (vm.KernelBuilder, error) {
	cache, mirror, err := f.cacheAndMirror(spec.Suite)
	if err != nil {
		return vm.KernelBuilder{}, err
	}
	return vm.KernelBuilder{CacheDir: cache, Mirror: mirror, Cmd: vm.ExecCommander{}, Fetch: vm.HTTPFetcher{},
		Clock: clock.Real{}, Log: g.logger, Tools: vm.CheckTools}, nil
}

// cacheAndMirror returns the absolute cache directory and the Debian
// mirror: --mirror, else the machine's apt entry for suite (on a bookworm
// host that names no trixie, DetectMirror takes the mirror serving the
// lab's other releases).
func (f *vmFlags) cacheAndMirror(suite string) (cache, mirror string, err error) {
	if cache, err = filepath.Abs(f.cacheDir); err != nil {
		return "", "", usage(fmt.Errorf("cache dir %q: %w", f.cacheDir, err))
	}
	mirror = f.mirror
	if mirror == "" {
		if mirror, err = vm.DetectMirror(os.DirFS("/"), suite); err != nil {
			return "", "", err
		}
	} else if !strings.HasPrefix(mirror, "http://") && !strings.HasPrefix(mirror, "https://") {
		return "", "", usage(fmt.Errorf("mirror %q is not an http(s) URL", mirror))
	}
	return cache, mirror, nil
}

// checkKernel validates --kernel (before anything is built).
func (f *vmFlags) checkKernel() error {
	if f.kernel != vm.KernelDebian && f.kernel != vm.KernelLocalIO {
		return usage(fmt.Errorf("--kernel %q is not one of %s, %s", f.kernel, vm.KernelDebian, vm.KernelLocalIO))
	}
	return nil
}

// bootKernel returns the kernel --kernel names: nil for the image's own,
// else nfslab's build (cached, built when missing).
func (f *vmFlags) bootKernel(ctx context.Context, g *globals) (*vm.Kernel, error) {
	if err := f.checkKernel(); err != nil || f.kernel == vm.KernelDebian {
		return nil, err
	}
	spec := vm.LocalIOKernel(vmassets.KernelLocalIOConfig())
	b, err := f.kernelBuilder(g, spec)
	if err != nil {
		return nil, err
	}
	k, err := b.Get(ctx, spec, false)
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// spec is the image spec of the chosen flavour; a bad --guest is a usage
// error naming the value.
func (f *vmFlags) spec() (vm.ImageSpec, error) {
	g, err := vm.LookupGuest(f.guest)
	if err != nil {
		return vm.ImageSpec{}, usage(err)
	}
	s := g.Spec(vmassets.GuestInit(), f.diskMB)
	if err := s.Validate(); err != nil {
		return vm.ImageSpec{}, usage(err)
	}
	return s, nil
}

func (f *vmFlags) boot() vm.BootConfig {
	return vm.BootConfig{MemoryMB: f.memoryMB, CPUs: f.cpus, Accel: f.accel}
}

func (f *vmFlags) builder(g *globals) (vm.Builder, error) {
	cache, mirror, err := f.cacheAndMirror(f.guest)
	if err != nil {
		return vm.Builder{}, err
	}
	return vm.Builder{CacheDir: cache, Mirror: mirror, Cmd: vm.ExecCommander{}, Clock: clock.Real{}, Log: g.logger}, nil
}

// image validates the flags and reuses the cached image, or builds it (only
// then are debootstrap and a mirror needed).
func (f *vmFlags) image(ctx context.Context, g *globals) (vm.Image, error) {
	spec, err := f.spec()
	if err != nil {
		return vm.Image{}, err
	}
	cache, err := filepath.Abs(f.cacheDir)
	if err != nil {
		return vm.Image{}, usage(fmt.Errorf("cache dir %q: %w", f.cacheDir, err))
	}
	return vm.LoadOrBuild(ctx, spec, cache, func() (vm.Builder, error) { return f.builder(g) }, g.logger)
}

func newVMCmds(g *globals) []*cobra.Command {
	vmc := &cobra.Command{
		Use:   "vm",
		Short: "Build and boot the lab VM: a Debian guest with kernel NFS, for machines whose kernel has none",
	}
	// addAll maps argument errors of the subcommands to exit 2, as for
	// top-level commands.
	addAll(vmc, []*cobra.Command{newVMBuildCmd(g), newVMRunCmd(g), newVMShellCmd(g), newVMCleanCmd(g), newVMBoxCmd(g), newVMKernelCmd(g),
		newVMAgentCmd(g), newVMSmokeCmd(g), newVMUnsupportedCmd(g)})
	return []*cobra.Command{vmc}
}

func newVMBuildCmd(g *globals) *cobra.Command {
	f := &vmFlags{}
	var force bool
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the lab VM image with debootstrap (cached; rebuilt only when its inputs change)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := f.spec()
			if err != nil {
				return err
			}
			if err := vm.CheckTools(vm.BuildTools...); err != nil {
				return err
			}
			b, err := f.builder(g)
			if err != nil {
				return err
			}
			im, err := b.Build(cmd.Context(), spec, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "image %s\n  dir     %s\n  kernel  %s\n  built   %s (took %s)\n",
				im.Key, im.Dir, im.KernelRelease, im.Built.Format(time.RFC3339), im.BuildTime.D().Round(time.Second))
			for _, p := range im.Phases {
				fmt.Fprintf(g.stdout, "  %-12s %s\n", p.Name, p.Duration.D().Round(100*time.Millisecond))
			}
			return nil
		},
	}
	f.addImage(cmd, vm.DefaultGuest)
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even when a cached image exists")
	return cmd
}

func newVMRunCmd(g *globals) *cobra.Command {
	f := &vmFlags{}
	var (
		scenarios    []string
		out, scenDir string
		timeout      time.Duration
		hang         time.Duration
		smoke        bool
		smokeOnly    bool
		testsOnly    bool
		keep         bool
		testBins     []string
		crashes      []string
		jobs         int
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run NFS scenarios in the lab VM (default: every shipped nfs-* scenario) and bring the run directories back",
		Long: `Boots the lab VM once and runs the scenarios inside it, against the guest's
real kernel NFS client and knfsd server (netns kind). Each scenario's run
directory (journal.jsonl, report.md, report.html, logs) lands under --out.
Prints PASS or FAIL per scenario and exits 1 if any failed. Until this build
has the scenario engine, nfs-full-drop runs as the built-in smoke test.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.boot().Validate(); err != nil {
				return usage(err)
			}
			if _, err := f.spec(); err != nil {
				return err
			}
			if timeout <= 0 {
				return usage(fmt.Errorf("--timeout %s must be positive", timeout))
			}
			if jobs < 1 {
				return usage(fmt.Errorf("--jobs %d must be at least 1", jobs))
			}
			if hang < 2*vm.HeartbeatEvery {
				return usage(fmt.Errorf("--hang-timeout %s must be at least %s (two of the agent's heartbeats)", hang, 2*vm.HeartbeatEvery))
			}
			scenarioFlag := append([]string(nil), scenarios...)
			if len(scenarios) == 0 {
				names, err := vm.ShippedNFSScenarios(scenDir)
				if err != nil {
					return usage(err)
				}
				scenarios = vm.ScenariosForKernel(names, f.kernel)
			}
			if err := vm.CheckScenarios(scenDir, scenarios); err != nil {
				return usage(err)
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding the nfslab binary: %w", err)
			}
			var tests []vm.TestBinary
			for _, v := range testBins {
				tb, err := vm.ParseTestBinary(v)
				if err != nil {
					return usage(err)
				}
				tests = append(tests, tb)
			}
			var trials []vm.CrashTrial
			for _, v := range crashes {
				c, err := vm.ParseCrashTrial(v)
				if err != nil {
					return usage(err)
				}
				if err := vm.CheckScenarios(scenDir, []string{c.Scenario}); err != nil {
					return usage(err)
				}
				trials = append(trials, c)
			}
			opts := vm.PlanOptions{Scenarios: scenarios, Smoke: smoke, Tests: tests, CI: os.Getenv("CI") == "true", Crashes: trials}
			if testsOnly {
				if len(scenarioFlag) > 0 || smokeOnly || len(trials) > 0 || len(tests) == 0 {
					return usage(fmt.Errorf("--tests-only runs only --test-binary steps (at least one), without --scenario, --smoke-only or --crash"))
				}
				opts.Scenarios, opts.Smoke = nil, false
			} else if smokeOnly {
				if len(scenarioFlag) > 0 {
					return usage(fmt.Errorf("--smoke-only runs no scenarios, but --scenario %s was given", strings.Join(scenarioFlag, ",")))
				}
				opts.Scenarios, opts.Smoke, opts.Crashes = nil, true, nil
			} else {
				opts.Engine = vm.HasEngine(cmd.Context(), self)
			}
			var plan []vm.Job
			for _, o := range vm.SplitPlan(opts, jobs, scenarioCost(scenDir)) {
				job := vm.PlanJob(o)
				if err := job.Validate(); err != nil {
					return usage(err)
				}
				plan = append(plan, job)
			}
			ctx := cmd.Context()
			if err := f.checkKernel(); err != nil {
				return err
			}
			if len(plan) > 1 { // one boot: as before, qemu takes its memory lazily
				if err := vm.CheckMemory(len(plan), f.memoryMB); err != nil {
					return err
				}
			}
			im, err := f.image(ctx, g)
			if err != nil {
				return err
			}
			kern, err := f.bootKernel(ctx, g)
			if err != nil {
				return err
			}
			files := map[string]string{"scenarios": scenDir}
			for _, tb := range tests {
				files[tb.ShareName()] = tb.Path
			}
			h := vm.Host{Session: vm.Session{Image: im, Boot: f.boot(), Cmd: vm.ExecCommander{}, Clock: clock.Real{}, Log: g.logger, Console: g.stderr, Kernel: kern},
				Binary: self, Files: files, Out: out, Timeout: timeout, HangTimeout: hang, KeepWork: keep}
			return h.RunAll(ctx, plan, g.stdout)
		},
	}
	f.addImage(cmd, vm.DefaultGuest)
	f.addBoot(cmd)
	f.addKernel(cmd)
	cmd.Flags().StringSliceVar(&scenarios, "scenario", nil, "scenario name (repeatable; default: every nfs-*.yaml in --scenarios-dir, the nfs-localio* ones only with --kernel localio)")
	cmd.Flags().StringVar(&scenDir, "scenarios-dir", "scenarios", "directory of scenario files")
	cmd.Flags().StringVar(&out, "out", "runs", "where the run directories are put")
	cmd.Flags().DurationVar(&timeout, "timeout", 45*time.Minute, "bound on the whole boot")
	cmd.Flags().DurationVar(&hang, "hang-timeout", vm.DefaultHangTimeout, "end the boot when the guest agent's heartbeat stood still this long, and boot once more for the steps it had not finished")
	cmd.Flags().BoolVar(&smoke, "smoke", false, "also run the built-in full-drop smoke test")
	cmd.Flags().BoolVar(&smokeOnly, "smoke-only", false, "run only the built-in full-drop smoke test")
	cmd.Flags().BoolVar(&testsOnly, "tests-only", false, "run only the --test-binary steps (e.g. the LOCALIO guest tests with --kernel localio)")
	cmd.Flags().StringArrayVar(&testBins, "test-binary", nil, "Go test binary to run in the guest after the scenarios, PATH or PATH=REGEX (build with CGO_ENABLED=0 go test -c; repeatable)")
	cmd.Flags().IntVar(&jobs, "jobs", 1, "boots of the image side by side, the steps split among them by expected time (each boot takes the guest's memory, and under TCG a host core)")
	cmd.Flags().BoolVar(&keep, "keep-workdir", false, "keep the VM work directory (share, console log)")
	cmd.Flags().StringArrayVar(&crashes, "crash", nil, "crash trial SCENARIO@DURATION: SIGKILL 'nfslab run SCENARIO' that long after its first fault, run 'nfslab heal --all', and fail on anything left behind (repeatable)")
	return cmd
}

// probeImageSetup is about what the first probe-in-a-container scenario
// of a boot spends making the probe image in the guest (4.5 min in
// bookworm under TCG, measured 2026-12-03); the others of the boot reuse
// the image.
const probeImageSetup = 4 * time.Minute

// scenarioCost weighs a scenario for vm.SplitPlan by its declared
// duration (the engine ends a run earlier once every expectation has its
// verdict), keeping the probe-in-a-container scenarios in one boot. A
// file that does not decode weighs the guest's bound; its run reports
// the error.
func scenarioCost(dir string) func(string) vm.Cost {
	return func(name string) vm.Cost {
		sc, err := scenario.LoadFile(filepath.Join(dir, name+".yaml"))
		if err != nil {
			return vm.Cost{Time: vm.ScenarioTimeout}
		}
		c := vm.Cost{Time: sc.Duration.D()}
		if sc.Target.Probe != nil && sc.Target.Probe.Container {
			c.Group, c.Setup = "probe-image", probeImageSetup
		}
		return c
	}
}

func newVMShellCmd(g *globals) *cobra.Command {
	f := &vmFlags{}
	cmd := &cobra.Command{
		Use:   "shell",
		Short: "Boot the lab VM with an interactive root shell on its serial console",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.boot().Validate(); err != nil {
				return usage(err)
			}
			if err := f.checkKernel(); err != nil {
				return err
			}
			if _, err := f.spec(); err != nil {
				return err
			}
			im, err := f.image(cmd.Context(), g)
			if err != nil {
				return err
			}
			kern, err := f.bootKernel(cmd.Context(), g)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding the nfslab binary: %w", err)
			}
			work, err := vm.MakeWork(im.Dir, "shell-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(work)
			s := vm.Session{Image: im, Boot: f.boot(), Cmd: vm.ExecCommander{}, Clock: clock.Real{}, Log: g.logger, Kernel: kern}
			return s.Shell(cmd.Context(), work, self, os.Stdin, g.stdout)
		},
	}
	f.addImage(cmd, vm.DefaultGuest)
	f.addBoot(cmd)
	f.addKernel(cmd)
	return cmd
}

func newVMKernelCmd(g *globals) *cobra.Command {
	f := &vmFlags{}
	var force bool
	var jobs int
	cmd := &cobra.Command{
		Use:   "kernel",
		Short: "Build the LOCALIO guest kernel from Debian's linux-source (cached by source version and config fragment)",
		Long: `Builds the lab VM's LOCALIO kernel: trixie's linux-source-6.12 from the
Debian mirror (InRelease checked with gpgv, the index and the .deb by
SHA256), make allnoconfig with nfslab's config fragment (everything the
guest needs built in, CONFIG_NFS_LOCALIO=y, no modules, no initrd), checked
setting by setting, then bzImage under nice -n 19. Cached in
CACHE/kernels/localio-<hash of format, source version, fragment>/;
` + "`nfslab vm run --kernel localio`" + ` boots it with the image's root disk.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if jobs < 0 {
				return usage(fmt.Errorf("--jobs %d is negative", jobs))
			}
			spec := vm.LocalIOKernel(vmassets.KernelLocalIOConfig())
			if err := spec.Validate(); err != nil {
				return usage(err)
			}
			b, err := f.kernelBuilder(g, spec)
			if err != nil {
				return err
			}
			b.Jobs = jobs
			k, err := b.Get(cmd.Context(), spec, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "kernel %s\n  dir      %s\n  release  %s\n  source   %s %s\n  built    %s (took %s, -j%d)\n",
				k.Key, k.Dir, k.Release, k.Source.Package, k.Source.Version, k.Built.Format(time.RFC3339), k.BuildTime.D().Round(time.Second), k.Jobs)
			for _, p := range k.Phases {
				fmt.Fprintf(g.stdout, "  %-12s %s\n", p.Name, p.Duration.D().Round(100*time.Millisecond))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.cacheDir, "cache-dir", vm.DefaultCacheDir, "image cache directory (kernels go to its kernels/)")
	cmd.Flags().StringVar(&f.mirror, "mirror", "", "Debian mirror (default: the machine's apt configuration)")
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even when a cached kernel exists")
	cmd.Flags().IntVar(&jobs, "jobs", 0, "make -j (default: the number of CPUs)")
	return cmd
}

func newVMBoxCmd(g *globals) *cobra.Command {
	f := &vmFlags{}
	var key string
	cmd := &cobra.Command{
		Use:   "box",
		Short: "Build a Vagrant box (libvirt provider) from the guest image: vagrant user, sshd, sudo, DHCP (cached)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lab, err := f.spec()
			if err != nil {
				return err
			}
			if key == "" {
				k, err := vm.FindInsecureKey()
				if err != nil {
					return err
				}
				key = k
			}
			spec := vm.BoxSpec(lab)
			spec.Customize = vm.BoxCustomizer{Cmd: vm.ExecCommander{}, InsecureKey: key}.Customize
			if err := spec.Validate(); err != nil {
				return usage(err)
			}
			if err := vm.CheckTools(append(vm.BuildTools, "qemu-img", "tar", "chroot")...); err != nil {
				return err
			}
			b, err := f.builder(g)
			if err != nil {
				return err
			}
			im, err := b.Build(cmd.Context(), spec, false)
			if err != nil {
				return err
			}
			box, err := vm.PackBox(cmd.Context(), vm.ExecCommander{}, im, spec.DiskSizeMB)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "box %s\n  add with: vagrant box add --force --name %s %s\n", box, vm.BoxName(lab.Suite), box)
			return nil
		},
	}
	// The Vagrant lab (Vagrantfile, scripts/vagrant-lab) was made on bookworm.
	f.addImage(cmd, "bookworm")
	cmd.Flags().StringVar(&key, "insecure-key", "", "Vagrant's insecure public key (default: the one the vagrant package ships)")
	return cmd
}

func newVMCleanCmd(g *globals) *cobra.Command {
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "clean",
		Short: "Remove the lab VM cache (images and downloaded packages)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := vm.Clean(cacheDir); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "removed %s\n", cacheDir)
			return nil
		},
	}
	cmd.Flags().StringVar(&cacheDir, "cache-dir", vm.DefaultCacheDir, "image cache directory")
	return cmd
}

// newVMAgentCmd is the guest side: the guest init runs it.
func newVMAgentCmd(g *globals) *cobra.Command {
	var share string
	cmd := &cobra.Command{
		Use:    "agent",
		Short:  "Inside the lab VM: run the job on the share and report (started by the guest init)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a := vm.Agent{Share: share, Console: g.stdout, Clock: clock.Real{}}
			return a.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&share, "share", "/mnt/nfslab", "the host share")
	return cmd
}

func newVMSmokeCmd(g *globals) *cobra.Command {
	var probeDir, out string
	var within time.Duration
	cmd := &cobra.Command{
		Use:   "smoke full-drop",
		Short: "Inside the lab VM: knfsd in a netns, soft mount, journal probe, nfslab drop; expects the msync IOException",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "full-drop" {
				return usage(fmt.Errorf("smoke case %q is not full-drop", args[0]))
			}
			if within <= 0 {
				return usage(fmt.Errorf("--detect-within %s must be positive", within))
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding the nfslab binary: %w", err)
			}
			probeAbs, err := filepath.Abs(probeDir)
			if err != nil {
				return usage(err)
			}
			s := vm.Smoke{Nfslab: self, ProbeDir: probeAbs, OutDir: out, Clock: clock.Real{}, Log: g.logger,
				Out: g.stdout, DetectWithin: within}
			res, err := s.FullDrop(cmd.Context())
			if err != nil {
				return err
			}
			if res.Verdict != vm.Pass {
				return exitError{1, fmt.Errorf("smoke %s failed: %s", res.Case, strings.Join(res.Reasons, "; "))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&probeDir, "probe", "probe", "directory with the compiled JournalProbe.class")
	cmd.Flags().StringVar(&out, "out", "runs", "where the run directory is created")
	cmd.Flags().DurationVar(&within, "detect-within", 3*time.Minute, "bound on the wait for the msync IOException after the drop")
	return cmd
}

// newVMUnsupportedCmd marks a scenario the guest could not run, as a
// failing step with the reason, instead of leaving it out silently.
func newVMUnsupportedCmd(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:    "unsupported SCENARIO",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			return exitError{1, fmt.Errorf("scenario %s not run: %s", args[0], reason)}
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why")
	return cmd
}
