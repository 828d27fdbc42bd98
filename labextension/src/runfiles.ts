/**
 * A run directory's files as the server lists them (`GET workloads/NAME/files`), as a tree,
 * and the paths of the read-only `WorkbenchRuns` drive that serves them to Lab.
 * Pure: no DOM, no server calls (the tests use it directly).
 */

/** The drive's name: `WorkbenchRuns:NAME/output.ipynb` opens a run's executed notebook. */
export const DRIVE_NAME = 'WorkbenchRuns';

/** One regular file under a run directory. */
export interface IRunFile {
  path: string;
  size: number;
  modified: string;
}

/** `GET workloads/NAME/files`. */
export interface IRunFiles {
  run_dir: string | null;
  files: IRunFile[];
  /** The executed notebook's path in the run directory, or null. */
  notebook: string | null;
}

/** A folder (with children) or a file (with size and time) of a run directory. */
export interface IFileNode {
  name: string;
  /** Relative to the run directory. */
  path: string;
  size?: number;
  modified?: string;
  children?: IFileNode[];
}

/** The flat list as nested folders: folders first, then files, each by name. */
export function filesToTree(files: readonly IRunFile[]): IFileNode[] {
  const root: IFileNode = { name: '', path: '', children: [] };
  for (const file of files) {
    const parts = file.path.split('/').filter(part => part !== '' && part !== '.');
    if (parts.length === 0) {
      continue;
    }
    let folder = root;
    for (let i = 0; i < parts.length - 1; i++) {
      const path = parts.slice(0, i + 1).join('/');
      let next = folder.children!.find(child => child.children && child.name === parts[i]);
      if (!next) {
        next = { name: parts[i], path, children: [] };
        folder.children!.push(next);
      }
      folder = next;
    }
    folder.children!.push({
      name: parts[parts.length - 1],
      path: parts.join('/'),
      size: file.size,
      modified: file.modified
    });
  }
  sortTree(root);
  return root.children!;
}

function sortTree(node: IFileNode): void {
  if (!node.children) {
    return;
  }
  node.children.sort((a, b) => {
    if (!!a.children !== !!b.children) {
      return a.children ? -1 : 1;
    }
    return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
  });
  node.children.forEach(sortTree);
}

/** The entries directly inside `folder` ('' for the run directory itself); null: no such folder. */
export function folderEntries(files: readonly IRunFile[], folder: string): IFileNode[] | null {
  const clean = folder.replace(/^\/+|\/+$/g, '');
  let nodes = filesToTree(files);
  if (!clean) {
    return nodes;
  }
  for (const part of clean.split('/')) {
    const next = nodes.find(node => node.children && node.name === part);
    if (!next) {
      return null;
    }
    nodes = next.children!;
  }
  return nodes;
}

/** `WorkbenchRuns:NAME/rel`: the path Lab opens a run's file by. */
export function drivePath(workload: string, rel: string): string {
  return `${DRIVE_NAME}:${workload}/${rel.replace(/^\/+/, '')}`;
}

/** A drive-local path (`NAME/rel/file`) split into the workload and the file's path. */
export function splitLocalPath(local: string): { workload: string; rel: string } {
  const clean = local.replace(/^\/+|\/+$/g, '');
  const slash = clean.indexOf('/');
  return slash < 0
    ? { workload: clean, rel: '' }
    : { workload: clean.slice(0, slash), rel: clean.slice(slash + 1) };
}

/** Whether the refused path would leave the run directory: `..`, NUL, backslashes. */
export function unsafeRel(rel: string): boolean {
  return rel.split('/').some(part => part === '..') || rel.includes('\0') || rel.includes('\\');
}

/** How Lab should open a run's file: a notebook, text it can show, or raw bytes. */
export function contentKind(path: string): 'notebook' | 'text' | 'binary' {
  if (/\.ipynb$/i.test(path)) {
    return 'notebook';
  }
  return /\.(txt|log|json|jsonl|csv|tsv|py|md|ya?ml|toml|cfg|ini|out|err|sh|html?|svg|xml)$/i.test(
    path
  )
    ? 'text'
    : 'binary';
}

/** "512 B", "1.5 KiB", "3.2 MiB". */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) {
    return '–';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0
    ? `${value} B`
    : `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}
