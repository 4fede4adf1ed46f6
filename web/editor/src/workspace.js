// The workspace page's script: a CodeMirror 6 editor (SQL, YAML and Jinja highlighting) on every
// `textarea[data-editor]`, kept in sync with its textarea so the form submits what was typed;
// Ctrl/Cmd-S saves; leaving with unsaved changes asks first (the "Working…" buttons are the
// pages' own script, /assets/lablink.js). Without JavaScript the page still works with the plain
// textarea.
import {
  Decoration,
  EditorView,
  MatchDecorator,
  ViewPlugin,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
} from "@codemirror/view";
import { EditorState } from "@codemirror/state";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import {
  bracketMatching,
  defaultHighlightStyle,
  indentOnInput,
  syntaxHighlighting,
} from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { sql } from "@codemirror/lang-sql";
import { yaml } from "@codemirror/lang-yaml";

// dbt files are Jinja templates: `{{ }}`, `{% %}` and `{# #}` are marked over the language's own
// highlighting.
const jinjaMarks = new MatchDecorator({
  regexp: /\{\{[\s\S]*?\}\}|\{%[\s\S]*?%\}|\{#[\s\S]*?#\}/g,
  decoration: Decoration.mark({ class: "cm-jinja" }),
});
const jinja = ViewPlugin.fromClass(
  class {
    constructor(view) {
      this.decorations = jinjaMarks.createDeco(view);
    }
    update(update) {
      this.decorations = jinjaMarks.updateDeco(update, this.decorations);
    }
  },
  { decorations: (plugin) => plugin.decorations },
);

function language(name) {
  switch (name) {
    case "sql":
      return [sql(), jinja];
    case "yaml":
      return [yaml(), jinja];
    default:
      return [jinja];
  }
}

// The page's Content-Security-Policy lets only styles marked with this response's nonce inline;
// CodeMirror writes its base styles into one `<style>` element, which gets it.
const nonce = document.currentScript ? document.currentScript.nonce : "";

function mount(textarea) {
  const form = textarea.form;
  const view = new EditorView({
    state: EditorState.create({
      doc: textarea.value,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        history(),
        drawSelection(),
        indentOnInput(),
        bracketMatching(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        keymap.of([
          indentWithTab,
          {
            key: "Mod-s",
            run: () => {
              form.requestSubmit();
              return true;
            },
          },
          ...defaultKeymap,
          ...historyKeymap,
          ...searchKeymap,
        ]),
        language(textarea.dataset.editor),
        EditorView.cspNonce.of(nonce),
        // Long lines wrap and the editor grows with the file: no scrolling region of its own,
        // which keyboard users could not reach (the page scrolls instead).
        EditorView.lineWrapping,
        EditorView.contentAttributes.of({
          "aria-label": textarea.getAttribute("aria-label") || "File content",
        }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) {
            textarea.value = update.state.doc.toString();
            form.dataset.dirty = "true";
          }
        }),
      ],
    }),
  });
  textarea.hidden = true;
  textarea.after(view.dom);
  form.addEventListener("submit", () => {
    delete form.dataset.dirty;
  });
}

document.querySelectorAll("textarea[data-editor]").forEach(mount);

window.addEventListener("beforeunload", (event) => {
  if (document.querySelector("form[data-dirty]")) {
    event.preventDefault();
  }
});
