"""The trigger form of a DAG, as a person uses it, on each Airflow line.

Airflow 3.x (React UI): the DAG page's "Trigger" button opens a dialog; Params are grouped in
accordion sections (one open at a time), enums are react-select comboboxes, date-times native
``datetime-local`` inputs, arrays textareas; the dialog's Trigger button stays disabled while a
required field is empty. Airflow 2.11 (Flask UI): ``/dags/<dag_id>/trigger`` is a page; sections are
collapsed panels, enums select2 boxes, date-times text inputs with a bootstrap datetimepicker;
HTML5 validation refuses empty required fields, the server refuses a conf its Params reject.

On both, each Param's control is named ``element_<param>``; the rest is per line and small.
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from datetime import datetime

from tests.integration.ui.webdriver import Browser, Element

# Label, description and kind of control of the field around an ``element_<key>`` control.
_FIELD_INFO = """
const el = document.querySelector(`[name="element_${arguments[0]}"]`);
if (!el) return null;
const box = el.closest('[data-scope=field][data-part=root]') || el.closest('tr');
const label = box.querySelector('label');
const help = box.querySelector('[data-part=helper-text], .help-block');
let kind = el.tagName === 'TEXTAREA' ? 'textarea' : (el.type || el.tagName).toLowerCase();
if (el.tagName === 'SELECT' || (el.type === 'hidden' && box.querySelector('[role=combobox]'))) kind = 'select';
else if (el.type === 'datetime-local' || el.closest('.datetimepicker')) kind = 'datetime';
else if (el.getAttribute('role') === 'spinbutton' || el.getAttribute('valuetype') === 'number') kind = 'number';
return {label: label ? label.innerText.replace(/[\\s*:]+$/, '').trim() : null,
        required: !!(label && label.innerText.includes('*')),
        description: help ? help.innerText.trim() : null, kind: kind, value: el.value};
"""


@dataclass
class Field:
    label: str | None
    required: bool
    description: str | None
    kind: str  # select, datetime, checkbox, textarea, number, text
    value: str


class TriggerForm:
    """Shared steps; subclasses hold the per-line page logic."""

    def __init__(self, browser: Browser, base_url: str, dag_id: str) -> None:
        self.b, self.base, self.dag_id = browser, base_url, dag_id

    def control(self, key: str) -> Element:
        return self.b.find(f'[name="element_{key}"]')

    def field(self, key: str) -> Field:
        info = self.b.js(_FIELD_INFO, key)
        assert info is not None, f"the form has no control for Param {key!r}"
        return Field(**info)

    def fill(self, key: str, value: str) -> None:
        self.reveal(key)
        self.control(key).fill(value)

    # per line: open, reveal, options, choose, set_datetime, submit, refusals, run_url
    def open(self) -> None:
        raise NotImplementedError

    def reveal(self, key: str) -> None:
        raise NotImplementedError


class ReactTriggerForm(TriggerForm):
    """Airflow 3.x: the trigger dialog of the DAG page."""

    def dialog(self) -> Element:
        return self.b.find("[data-scope=dialog][data-part=content]")

    def open(self) -> None:
        self.b.get(f"{self.base}/dags/{self.dag_id}")
        button = self.b.wait(lambda: [e for e in self.b.find_all("button") if e.text.strip() == "Trigger"],
                             what="the DAG page's Trigger button")[0]  # fmt: skip
        button.click()
        self.b.wait(lambda: self.b.find_all('[data-scope=dialog][data-part=content] [name^="element_"]'),
                    what="the trigger dialog's form")  # fmt: skip

    def sections(self) -> list[str]:
        triggers = self.dialog().find_all("[data-scope=accordion][data-part=item-trigger]")
        return [t.text.strip() for t in triggers]

    def reveal_section(self, name: str) -> None:
        [trigger] = [t for t in self.dialog().find_all("[data-scope=accordion][data-part=item-trigger]")
                     if t.text.strip() == name]  # fmt: skip
        if trigger.attribute("aria-expanded") != "true":
            trigger.click()

    def reveal(self, key: str) -> None:
        trigger = self.b.js(
            "const item = document.querySelector(`[name=\"element_${arguments[0]}\"]`)"
            ".closest('[data-scope=accordion][data-part=item]');"
            "return item ? item.querySelector('[data-part=item-trigger]') : null;", key)  # fmt: skip
        if trigger is not None and trigger.attribute("aria-expanded") != "true":
            trigger.click()
        self.b.wait(lambda: self.b.js("return arguments[0].closest('[data-part=item-content]').offsetHeight > 0",
                                      self._visible_part(key)), what=f"section of {key} to open")  # fmt: skip

    def _visible_part(self, key: str) -> Element:
        el = self.control(key)
        return el if el.attribute("type") != "hidden" else self._combobox(key)

    def _combobox(self, key: str) -> Element:
        return self.b.js("return arguments[0].closest('[data-scope=field][data-part=root]')"
                         ".querySelector('[role=combobox]')", self.control(key))  # fmt: skip

    def options(self, key: str) -> list[str]:
        """The picker's choices as shown (values_display), read from its open list."""
        self.reveal(key)
        self._combobox(key).click()
        listbox = self.b.wait(lambda: self.b.js("return document.getElementById(arguments[0])",
                                                self._combobox(key).attribute("aria-controls")),
                              what=f"the {key} picker's list")  # fmt: skip
        options = listbox.find_all("[role=option]")
        shown = [o.text for o in options]
        # close the list by picking the current choice again (Escape would close the whole dialog)
        [current] = [o for o in options if o.attribute("aria-selected") == "true"]
        current.click()
        return shown

    def choose(self, key: str, shown: str) -> None:
        self.reveal(key)
        self._combobox(key).click()
        listbox = self.b.wait(lambda: self.b.js("return document.getElementById(arguments[0])",
                                                self._combobox(key).attribute("aria-controls")),
                              what=f"the {key} picker's list")  # fmt: skip
        [option] = [o for o in listbox.find_all("[role=option]") if o.text == shown]
        option.click()

    def set_datetime(self, key: str, moment: datetime) -> None:
        """Types into the native date-time picker, segment by segment (en-US: mm/dd/yyyy, hh:mm AM)."""
        self.reveal(key)
        el = self.control(key)
        el.click()
        el.type(moment.strftime("%m%d%Y"))
        self.b.keys("\ue004")  # Tab to the time segments
        el.type(moment.strftime("%I%M%p"))
        expected = moment.strftime("%Y-%m-%dT%H:%M")
        self.b.wait(lambda: el.prop("value") == expected, 5, f"{key} to hold {expected}")

    def trigger_button(self) -> Element:
        [button] = [e for e in self.dialog().find_all("button") if e.text.strip() == "Trigger"]
        return button

    def submit(self) -> None:
        self.trigger_button().click()

    def refusals(self) -> dict[str, str]:
        """{"form": why the form cannot be sent} (the disabled Trigger button) plus each field's
        error text."""
        out = {}
        if self.trigger_button().prop("disabled"):
            out["form"] = "Trigger button disabled"
        errors = self.b.js(
            "return [...document.querySelectorAll('[data-scope=dialog] [data-part=error-text]')].map(e => {"
            "const box = e.closest('[data-scope=field][data-part=root]');"
            "const el = box && box.querySelector('[name^=element_]');"
            "return [el ? el.name.substring(8) : '?', e.innerText.trim()]; })")  # fmt: skip
        out.update({k: v for k, v in errors})
        return out

    def wait_submitted(self) -> None:
        self.b.wait(lambda: "/runs/" in self.b.url, 30, "the run page after triggering")

    def run_url(self, run_id: str) -> str:
        return f"{self.base}/dags/{self.dag_id}/runs/{urllib.parse.quote(run_id, safe='')}"


class FlaskTriggerForm(TriggerForm):
    """Airflow 2.11: the /dags/<dag_id>/trigger page."""

    def open(self) -> None:
        self.b.get(f"{self.base}/dags/{self.dag_id}/trigger")
        self.b.wait(lambda: self.b.find_all("#trigger_form"), what="the trigger form")
        time.sleep(0.3)  # trigger.js initialises the fields on document ready

    def sections(self) -> list[str]:
        toggles = self.b.find_all("#trigger_form a.accordion-toggle")
        return [t.text.strip() for t in toggles if t.attribute("id") != "generated_json_toggle"]

    def reveal_section(self, name: str) -> None:
        [toggle] = [t for t in self.b.find_all("#trigger_form a.accordion-toggle") if t.text.strip() == name]
        self._open(self.b.find(toggle.attribute("href")), name)

    def reveal(self, key: str) -> None:
        panel = self.b.js("return arguments[0].closest('.panel-collapse')", self.control(key))
        if panel is not None:
            self._open(panel, key)

    def _open(self, panel: Element, what: str) -> None:
        if "in" not in (panel.attribute("class") or "").split():
            self.b.find(f'a[href="#{panel.attribute("id")}"]').click()
            self.b.wait(lambda: "in" in (panel.attribute("class") or "").split() and
                        "collapsing" not in (panel.attribute("class") or ""), what=f"section of {what} to open")  # fmt: skip

    def _row(self, key: str) -> Element:
        return self.b.js("return arguments[0].closest('tr')", self.control(key))

    def options(self, key: str) -> list[str]:
        self.reveal(key)
        self._row(key).find(".select2-selection").click()
        shown = [o.text for o in self.b.wait(lambda: self.b.find_all(".select2-results__option"), what="select2 list")]
        self.b.keys("\ue00c")
        return shown

    def choose(self, key: str, shown: str) -> None:
        self.reveal(key)
        self._row(key).find(".select2-selection").click()
        options = self.b.wait(lambda: self.b.find_all(".select2-results__option"), what=f"the {key} picker's list")
        [option] = [o for o in options if o.text == shown]
        option.click()

    def open_picker(self, key: str) -> Element:
        """Clicks the calendar button; the datetimepicker widget that opens."""
        self.reveal(key)
        self._row(key).find(".input-group-addon").click()
        return self.b.wait(lambda: [w for w in self.b.find_all(".bootstrap-datetimepicker-widget")
                                    if w.prop("offsetHeight")], what=f"the {key} date picker")[0]  # fmt: skip

    def set_datetime(self, key: str, moment: datetime) -> None:
        self.reveal(key)
        el = self.control(key)
        el.fill(moment.strftime("%Y-%m-%dT%H:%M:%S+00:00"))
        self.b.keys("\ue004")  # Tab: leave the field (the form's JSON updates on blur)

    def submit(self) -> None:
        self.b.find("#trigger_form button[type=submit]").click()

    def refusals(self) -> dict[str, str]:
        """The browser's validation messages of invalid fields, plus the page's error flash."""
        invalid = self.b.js("return [...document.querySelectorAll('#trigger_form :invalid')]"
                            ".filter(e => e.name).map(e => [e.name.substring(8), e.validationMessage])")  # fmt: skip
        out = {k: v for k, v in invalid}
        flashes = [e.text for e in self.b.find_all(".alert-error, .alert-danger") if e.text.strip()]
        if flashes:
            out["form"] = " ".join(flashes)
        return out

    def wait_submitted(self) -> None:
        self.b.wait(lambda: "/trigger" not in self.b.url, 30, "the page after triggering")

    def run_url(self, run_id: str) -> str:
        return f"{self.base}/dags/{self.dag_id}/grid?" + urllib.parse.urlencode({"dag_run_id": run_id, "tab": "graph"})
