package bpmn

import (
	"encoding/xml"
	"testing"
)

func TestOneTask(t *testing.T) {
	var defs struct {
		Process struct {
			ID           string `xml:"id,attr"`
			Executable   bool   `xml:"isExecutable,attr"`
			ServiceTasks []struct {
				ID  string `xml:"id,attr"`
				Ext struct {
					Task struct {
						Type string `xml:"type,attr"`
					} `xml:"taskDefinition"`
				} `xml:"extensionElements"`
			} `xml:"serviceTask"`
		} `xml:"process"`
	}
	if err := xml.Unmarshal(OneTask, &defs); err != nil {
		t.Fatal(err)
	}
	p := defs.Process
	if p.ID != ProcessID || !p.Executable {
		t.Fatalf("process %q executable=%v", p.ID, p.Executable)
	}
	if len(p.ServiceTasks) != 1 || p.ServiceTasks[0].Ext.Task.Type != JobType {
		t.Fatalf("service tasks %+v", p.ServiceTasks)
	}
}
