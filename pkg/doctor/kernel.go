package doctor

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
)

// kernelFeature is a kernel option nfslab's shaping faults use, and the
// module that provides it when it is not built in.
type kernelFeature struct {
	check   string
	configs []string // every one must be y or m
	modules []string // module files (under kernel/) that provide them
	what    string
	needed  bool // false: nfslab does not use it; missing is only a warning
	fix     string
}

var vmShapeFix = "or run the fault in the lab VM (`nfslab vm run`), whose Debian kernel has it"

var kernelFeatures = []kernelFeature{
	{CheckQdiscHTB, []string{"CONFIG_NET_SCH_HTB"}, []string{"net/sched/sch_htb.ko"},
		"htb qdisc (nfslab's class per delay or limit fault)", true, "modprobe sch_htb, " + vmShapeFix},
	{CheckQdiscNetem, []string{"CONFIG_NET_SCH_NETEM"}, []string{"net/sched/sch_netem.ko"},
		"netem qdisc (delay, jitter, loss, duplicate, corrupt, reorder)", true, "modprobe sch_netem, " + vmShapeFix},
	{CheckQdiscPrio, []string{"CONFIG_NET_SCH_PRIO"}, []string{"net/sched/sch_prio.ko"},
		"prio qdisc (not used by nfslab: its class comes from htb)", false, "modprobe sch_prio (tools that build netem under prio need it)"},
	{CheckQdiscTBF, []string{"CONFIG_NET_SCH_TBF"}, []string{"net/sched/sch_tbf.ko"},
		"tbf qdisc (not used by nfslab: limit is an htb class rate)", false, "modprobe sch_tbf (tools that limit with tbf need it)"},
	{CheckClassify, []string{"CONFIG_NETFILTER_XT_TARGET_CLASSIFY"}, []string{"net/netfilter/xt_CLASSIFY.ko"},
		"iptables CLASSIFY target (puts the matching traffic in nfslab's class)", true, "modprobe xt_CLASSIFY, " + vmShapeFix},
	{CheckIngressShape, []string{"CONFIG_NET_SCH_INGRESS", "CONFIG_IFB", "CONFIG_NET_CLS_U32", "CONFIG_NET_ACT_MIRRED"},
		[]string{"net/sched/sch_ingress.ko", "drivers/net/ifb.ko", "net/sched/cls_u32.ko", "net/sched/act_mirred.ko"},
		"ingress qdisc, ifb, u32 filter and mirred action (--dir in/both)", false, "modprobe sch_ingress ifb cls_u32 act_mirred, " + vmShapeFix},
}

// kernelConfig reads the running kernel's configuration from
// /proc/config.gz or /boot/config-RELEASE; nil when neither is readable.
func kernelConfig(p Probe) map[string]string {
	var text []byte
	if b, err := p.ReadFile("/proc/config.gz"); err == nil {
		if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
			text, _ = io.ReadAll(zr)
		}
	}
	if text == nil {
		if b, err := p.ReadFile("/boot/config-" + p.KernelRelease()); err == nil {
			text = b
		}
	}
	if text == nil {
		return nil
	}
	cfg := map[string]string{}
	for _, l := range strings.Split(string(text), "\n") {
		l = strings.TrimSpace(l)
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = v
		} else if k, ok := strings.CutPrefix(l, "# "); ok && strings.HasSuffix(k, " is not set") {
			cfg[strings.TrimSuffix(k, " is not set")] = "n"
		}
	}
	return cfg
}

// loadedModules lists /proc/modules' module names.
func loadedModules(p Probe) map[string]bool {
	out := map[string]bool{}
	b, err := p.ReadFile("/proc/modules")
	if err != nil {
		return out
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			out[f[0]] = true
		}
	}
	return out
}

// checkKernelFeatures says which of the qdiscs, filters and targets of
// delay and limit faults the kernel has, from its configuration (built in
// or a module the kernel loads on first use), /proc/modules and
// modules.dep; nothing is run. This host's kernel, for one, has htb but
// not netem or prio.
func checkKernelFeatures(p Probe) []Check {
	cfg := kernelConfig(p)
	loaded := loadedModules(p)
	var out []Check
	for _, f := range kernelFeatures {
		c := Check{Name: f.check}
		var missing, unknown []string
		for i, opt := range f.configs {
			mod := f.modules[i]
			name := strings.TrimSuffix(mod[strings.LastIndex(mod, "/")+1:], ".ko")
			switch v := cfg[opt]; {
			case v == "y" || loaded[name]:
			case v == "m" || moduleAvailable(p, "kernel/"+mod):
			case cfg != nil:
				missing = append(missing, opt)
			default:
				unknown = append(unknown, name)
			}
		}
		switch {
		case len(missing) > 0:
			c.Status, c.Detail, c.Fix = Fail, fmt.Sprintf("no %s in this kernel (%s not set)", f.what, strings.Join(missing, ", ")), f.fix
			if !f.needed {
				c.Status = Warn
			}
		case len(unknown) > 0:
			c.Status, c.Detail, c.Fix = Warn, fmt.Sprintf("could not tell whether the kernel has %s (no /proc/config.gz, /boot/config-%s, or module %s)", f.what, p.KernelRelease(), strings.Join(unknown, ", ")), f.fix
		default:
			c.Status, c.Detail = OK, f.what+": present"
		}
		out = append(out, c)
	}
	return out
}
