--[[
html.lua: layout and provenance of the HTML paper (pandoc fallback renderer, run after crossref.lua).

  * Every figure and table gets a provenance line: the Snakemake rule that made it, the library
    modules that rule runs, and the commit (for a table typed into the paper's sources: that file). The data come from `_provenance.json` in the build
    directory, which the render step writes from the DAG (ctpaper.paper.render.write_provenance):
    figures are looked up by their image file, tables by their label. A figure or table without an
    entry is an error, so nothing in the paper can lose its origin silently.
  * Tables: the caption is lifted out of the <table> and the table sits in a box that scrolls
    sideways, so that a wide table never widens the page and its caption wraps at the column width.
  * `::: figure-index` (a Div with that class) becomes a list of links to the figures that follow it in
    the same section, grouped by their (sub)section, so that an appendix of many figures stays
    navigable. A figure with an `index` attribute (`{#fig-x index="Adult"}`) is listed by that
    short name, and a group whose figures all have one becomes a single line of links.
    `::: figure-group` (figures side by side on wide screens) needs only CSS.
Other formats pass through unchanged.
]]

if not FORMAT:match("html") then
  return {}
end

local fh = io.open("_provenance.json", "rb")
if not fh then error("html.lua: _provenance.json not found in the build directory") end
local prov = pandoc.json.decode(fh:read("a"))
fh:close()

local function code_list(items)
  local out = {}
  for i, item in ipairs(items) do
    if i > 1 then table.insert(out, pandoc.Str(",")); table.insert(out, pandoc.Space()) end
    table.insert(out, pandoc.Code(item))
  end
  return out
end

local function provenance_line(entry, what)
  if entry.source then    -- typed into the paper's own sources, made by no rule
    local inl = {pandoc.Str("Written in"), pandoc.Space(), pandoc.Code(entry.source),
                 pandoc.Str(","), pandoc.Space(), pandoc.Str("commit"), pandoc.Space(),
                 pandoc.Code(prov.commit), pandoc.Str(".")}
    return pandoc.Div({pandoc.Plain(inl)},
                      pandoc.Attr("", {"provenance"}, {{"data-source", entry.source},
                                                       {"data-of", what}}))
  end
  local inl = {pandoc.Str("Made by rule"), pandoc.Space(), pandoc.Code(entry.rule)}
  if #entry.modules > 0 then
    table.insert(inl, pandoc.Space())
    table.insert(inl, pandoc.Str(#entry.modules == 1 and "with module" or "with modules"))
    table.insert(inl, pandoc.Space())
    for _, x in ipairs(code_list(entry.modules)) do table.insert(inl, x) end
  end
  table.insert(inl, pandoc.Str(","))
  table.insert(inl, pandoc.Space())
  table.insert(inl, pandoc.Str("commit"))
  table.insert(inl, pandoc.Space())
  table.insert(inl, pandoc.Code(prov.commit))
  if prov.commit_note and prov.commit_note ~= "" then
    table.insert(inl, pandoc.Space())
    table.insert(inl, pandoc.Str("(" .. prov.commit_note .. ")"))
  end
  table.insert(inl, pandoc.Str("."))
  return pandoc.Div({pandoc.Plain(inl)},
                    pandoc.Attr("", {"provenance"}, {{"data-rule", entry.rule}, {"data-of", what}}))
end

local function figure_source(el)
  local src = nil
  el:walk({Image = function(img) src = src or img.src end})
  return src
end

local function figure(el)
  local src = figure_source(el)
  local entry = src and prov.figures[src]
  if not entry then
    error("html.lua: no producer recorded for figure " .. el.identifier .. " (image " ..
          tostring(src) .. ")")
  end
  local long = el.caption.long
  long:insert(provenance_line(entry, el.identifier))
  el.caption.long = long
  return el
end

local function tbl(el)
  local entry = prov.tables[el.identifier]
  if not entry then
    error("html.lua: no producer recorded for table '" .. el.identifier .. "'")
  end
  local id = el.identifier
  local caption = el.caption.long
  el.identifier = ""
  el.caption = pandoc.Caption()
  local blocks = {}
  if #caption > 0 then
    table.insert(blocks, pandoc.Div(caption, pandoc.Attr("", {"table-caption"})))
  end
  table.insert(blocks, pandoc.Div({el}, pandoc.Attr("", {"table-scroll"},
                                                    {{"tabindex", "0"}, {"role", "region"},
                                                     {"aria-label", "Table, scrolls sideways"}})))
  table.insert(blocks, provenance_line(entry, id))
  return pandoc.Div(blocks, pandoc.Attr(id, {"table-wrap"}))
end

-- ---- figure index ------------------------------------------------------------------------------

local function figure_entries(block)
  local found = {}
  pandoc.walk_block(pandoc.Div({block}), {Figure = function(el)
    table.insert(found, el)
  end})
  return found
end

local function index_name(fig)
  -- the `index` attribute of the figure or of its image
  local name = fig.attributes["index"]
  fig:walk({Image = function(img) name = name or img.attributes["index"] end})
  return name
end

local function index_label(fig)
  -- "Figure n" (added by crossref.lua as the caption's first Strong) and the caption's short form,
  -- else its first sentence
  local text = pandoc.utils.stringify(fig.caption.short or fig.caption.long)
  local label, rest = text:match("^(Figure%s+%d+):%s*(.*)$")
  label = label or "Figure"
  rest = rest or text
  local first = rest:match("^(.-%.)%s") or rest
  if #first > 110 then first = first:sub(1, 107):gsub("%s+%S*$", "") .. "…" end
  return label, first
end

local function build_index(blocks, start, level)
  -- figures after position `start` until the next header at or above `level`, grouped by header
  local groups, current = {}, nil
  for i = start + 1, #blocks do
    local b = blocks[i]
    if b.t == "Header" then
      if b.level <= level then break end
      current = {title = pandoc.utils.stringify(b.content), items = {}}
      table.insert(groups, current)
    else
      for _, fig in ipairs(figure_entries(b)) do
        if not current then
          current = {title = nil, items = {}}
          table.insert(groups, current)
        end
        local label, text = index_label(fig)
        table.insert(current.items, {id = fig.identifier, label = label, text = text,
                                     name = index_name(fig)})
      end
    end
  end
  local out = {}
  for _, g in ipairs(groups) do
    local named = #g.items > 0
    for _, it in ipairs(g.items) do named = named and it.name ~= nil end
    if named then       -- one line: "Title: LS (1) · Circ (2) · ..."
      local line = {}
      if g.title then
        line = {pandoc.Strong({pandoc.Str(g.title .. ":")}), pandoc.Space()}
      end
      for i, it in ipairs(g.items) do
        if i > 1 then table.insert(line, pandoc.Str(" · ")) end
        table.insert(line, pandoc.Link({pandoc.Str(it.name)}, "#" .. it.id, it.label))
      end
      table.insert(out, pandoc.Para(line))
    elseif #g.items > 0 then
      if g.title then table.insert(out, pandoc.Para({pandoc.Strong({pandoc.Str(g.title)})})) end
      local list = {}
      for _, it in ipairs(g.items) do
        table.insert(list, pandoc.Plain({pandoc.Link({pandoc.Str(it.label)}, "#" .. it.id),
                                         pandoc.Str(":"), pandoc.Space(), pandoc.Str(it.text)}))
      end
      table.insert(out, pandoc.BulletList(list))
    end
  end
  if #out == 0 then error("html.lua: a figure-index is not followed by any figure in its section") end
  return out
end

local function figure_indexes(doc)
  local level = 0
  for i, b in ipairs(doc.blocks) do
    if b.t == "Header" then
      level = b.level
    elseif b.t == "Div" and b.classes:includes("figure-index") then
      local content = b.content
      for _, x in ipairs(build_index(doc.blocks, i, level)) do content:insert(x) end
      b.content = content
      b.attributes["role"] = "navigation"
      b.attributes["aria-label"] = "Figures in this section"
    end
  end
  return doc
end

function Pandoc(doc)
  -- the index quotes the captions before the provenance lines are added to them
  return figure_indexes(doc):walk({Figure = figure, Table = tbl})
end
