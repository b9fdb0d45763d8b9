package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nfslab/nfslab/internal/cmdrun"
	"github.com/nfslab/nfslab/internal/privtest"
)

// TestChromiumScreenshot opens report.html in headless Chromium (Debian's
// chromium package) with networking features off and checks the screenshot:
// a real image, not one flat colour, with the fault-window shading visible.
// Set NFSLAB_KEEP_SCREENSHOT=DIR to keep report.html and the PNG.
func TestChromiumScreenshot(t *testing.T) {
	privtest.Tools(t, "chromium")
	dir := t.TempDir()
	if err := Write(dir, fullDrop(t, true)); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(dir, "report.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := cmdrun.Output(ctx, "chromium",
		"--headless", "--no-sandbox", "--disable-gpu",
		"--screenshot="+shot, "--window-size=1200,1600",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--no-first-run", "--disable-default-apps", "--disable-extensions",
		"--user-data-dir="+filepath.Join(dir, "profile"),
		"file://"+filepath.Join(dir, HTMLName))
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if keep := os.Getenv("NFSLAB_KEEP_SCREENSHOT"); keep != "" {
		_ = os.WriteFile(filepath.Join(keep, "report.png"), b, 0o644)
		h, _ := os.ReadFile(filepath.Join(dir, HTMLName))
		_ = os.WriteFile(filepath.Join(keep, HTMLName), h, 0o644)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	bounds := img.Bounds()
	if bounds.Dx() < 1000 || bounds.Dy() < 1000 {
		t.Fatalf("screenshot is %v", bounds)
	}
	fr, fg, fb := hexRGB(t, FaultFill)
	hr, hg, hb := hexRGB(t, HitColour)
	colours := map[[3]uint8]bool{}
	shaded, hits := 0, 0
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			c := rgb(img, x, y)
			if len(colours) < 64 {
				colours[c] = true
			}
			if near(c, fr, fg, fb) {
				shaded++
			}
			if near(c, hr, hg, hb) {
				hits++
			}
		}
	}
	if len(colours) < 8 {
		t.Fatalf("screenshot has %d colours: blank page?", len(colours))
	}
	// A fault window spans 40 of 100 s of a ~1000 px wide, ~180 px high plot.
	if shaded < 20000 {
		t.Errorf("only %d pixels of the fault shading %s are visible", shaded, FaultFill)
	}
	if hits < 100 {
		t.Errorf("only %d pixels of the hit marker colour %s are visible", hits, HitColour)
	}
	t.Logf("screenshot %v, %d shaded pixels, %d hit-marker pixels", bounds, shaded, hits)
}

func hexRGB(t *testing.T, s string) (uint8, uint8, uint8) {
	t.Helper()
	v, err := strconv.ParseUint(s[1:], 16, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint8(v >> 16), uint8(v >> 8), uint8(v)
}

func rgb(img image.Image, x, y int) [3]uint8 {
	r, g, b, _ := img.At(x, y).RGBA()
	return [3]uint8{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8)}
}

func near(c [3]uint8, r, g, b uint8) bool {
	d := func(a, b uint8) int {
		if a > b {
			return int(a - b)
		}
		return int(b - a)
	}
	return d(c[0], r) <= 4 && d(c[1], g) <= 4 && d(c[2], b) <= 4
}
