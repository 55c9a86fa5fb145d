--[[
crossref.lua: figure/table numbering and cross-references for the pandoc fallback renderer.

Pandoc reads `@fig-x` / `@tbl-x` as citations. This filter (run BEFORE --citeproc):
  * numbers every figure whose identifier starts with `fig-` and every table whose identifier starts
    with `tbl-`, in document order;
  * typst output: replaces such citations by native typst references `#ref(<fig-x>)` (typst numbers
    figures and tables itself) and swaps `.png` images for a sibling `.pdf` when one exists (vector
    figures in print);
  * other formats (HTML): prefixes captions with "Figure n:" / "Table n:" and replaces the citations by
    links "Figure n" / "Table n" to the element's anchor.
A reference to an undefined label is an error (pandoc exits non-zero), so a broken cross-reference can
never reach the rendered paper. Quarto does all of this natively; the filter is not used there.
]]

local is_typst = FORMAT:match("typst") ~= nil
local numbers = {}          -- identifier -> number
local prefix = {fig = "Figure", tbl = "Table", sec = "Section"}

local function kind_of(id)
  local k = id:match("^(%a+)%-")
  if k and prefix[k] then return k end
  return nil
end

local function file_exists(path)
  local fh = io.open(path, "rb")
  if fh then fh:close() return true end
  return false
end

local function number_sections(doc)
  -- hierarchical numbers as pandoc --number-sections / typst heading numbering assign them
  local counters = {}
  for _, blk in ipairs(doc.blocks) do
    if blk.t == "Header" and not blk.classes:includes("unnumbered") then
      local level = blk.level
      counters[level] = (counters[level] or 0) + 1
      for l = level + 1, 9 do counters[l] = nil end
      local parts = {}
      for l = 1, level do table.insert(parts, tostring(counters[l] or 0)) end
      if blk.identifier:match("^sec%-") then
        if numbers[blk.identifier] then error("crossref: duplicate label " .. blk.identifier) end
        numbers[blk.identifier] = table.concat(parts, ".")
      end
    end
  end
end

local function number_elements(doc)
  number_sections(doc)
  local count = {fig = 0, tbl = 0}
  local function register(id, want)
    if id ~= nil and id ~= "" and kind_of(id) == want then
      if numbers[id] then error("crossref: duplicate label " .. id) end
      count[want] = count[want] + 1
      numbers[id] = count[want]
    end
  end
  doc:walk({
    Figure = function(el) register(el.identifier, "fig") end,
    Table = function(el) register(el.identifier, "tbl") end,
  })
end

local function prepend_caption(caption, text)
  local label = {pandoc.Strong({pandoc.Str(text)}), pandoc.Space()}
  local long = caption.long
  if #long > 0 and (long[1].t == "Plain" or long[1].t == "Para") then
    local inl = long[1].content
    for i = #label, 1, -1 do table.insert(inl, 1, label[i]) end
    long[1].content = inl
  else
    table.insert(long, 1, pandoc.Plain(label))
  end
  caption.long = long
  return caption
end

local function label_caption(el, kind)
  local n = numbers[el.identifier]
  if n and not is_typst then
    el.caption = prepend_caption(el.caption, prefix[kind] .. " " .. n .. ":")
    return el
  end
  return nil
end

local function cite(el)
  -- Split the citation list: cross-references become numbered references, anything else stays a
  -- citation for citeproc (pandoc reads "@fig-a [@key]" as ONE Cite with two citations).
  local refs, others = {}, {}
  for _, c in ipairs(el.citations) do
    if kind_of(c.id) then table.insert(refs, c) else table.insert(others, c) end
  end
  if #refs == 0 then return nil end
  local out = {}
  for i, c in ipairs(refs) do
    local n = numbers[c.id]
    if not n then error("crossref: reference to undefined label @" .. c.id) end
    if i > 1 then
      table.insert(out, pandoc.Str(i == #refs and " and" or ","))
      table.insert(out, pandoc.Space())
    end
    if is_typst then
      table.insert(out, pandoc.RawInline("typst", "#ref(<" .. c.id .. ">);"))
    else
      local text = prefix[kind_of(c.id)] .. "\u{a0}" .. n
      table.insert(out, pandoc.Link({pandoc.Str(text)}, "#" .. c.id))
    end
  end
  if #others > 0 then
    for _, c in ipairs(others) do c.mode = "NormalCitation" end
    local keys = {}
    for _, c in ipairs(others) do table.insert(keys, "@" .. c.id) end
    table.insert(out, pandoc.Space())
    table.insert(out, pandoc.Cite({pandoc.Str("[" .. table.concat(keys, "; ") .. "]")}, others))
  end
  return out
end

local function image(el)
  if is_typst and el.src:match("%.png$") then
    local pdf = el.src:gsub("%.png$", ".pdf")
    if file_exists(pdf) then el.src = pdf; return el end
  end
  return nil
end

function Pandoc(doc)
  number_elements(doc)
  return doc:walk({
    Figure = function(el) return label_caption(el, "fig") end,
    Table = function(el) return label_caption(el, "tbl") end,
    Cite = cite,
    Image = image,
  })
end
