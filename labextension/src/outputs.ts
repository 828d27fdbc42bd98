/**
 * The read-only `WorkbenchRuns` Contents drive: a workload's run directory (outside the Jupyter
 * root, under WORKBENCH_HOME) served to Lab through the files endpoint, so its executed notebook
 * opens as `WorkbenchRuns:NAME/output.ipynb`. Everything that would write refuses.
 */
import type { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';

import type { WorkbenchAPI } from './api';
import {
  contentKind,
  DRIVE_NAME,
  folderEntries,
  type IFileNode,
  splitLocalPath,
  unsafeRel
} from './runfiles';

function readOnly(what: string, path: string): Promise<never> {
  return Promise.reject(
    new Error(
      `${DRIVE_NAME}:${path} is a workload's run output and read-only: ${what} refused — ` +
        'use File > Save As… to keep a copy in your folder'
    )
  );
}

function baseName(path: string): string {
  const parts = path.split('/');
  return parts[parts.length - 1] || path;
}

function toBase64(buffer: ArrayBuffer): string {
  const bytes = new Uint8Array(buffer);
  let binary = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

export class RunsDrive implements Contents.IDrive {
  readonly name = DRIVE_NAME;

  constructor(private readonly _api: WorkbenchAPI) {}

  get serverSettings(): ServerConnection.ISettings {
    return this._api.settings;
  }

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    Signal.clearData(this);
  }

  async get(localPath: string, options?: Contents.IFetchOptions): Promise<Contents.IModel> {
    const { workload, rel } = splitLocalPath(localPath);
    if (!workload) {
      return this._folder('', [], options);
    }
    if (unsafeRel(rel)) {
      throw new Error(`${DRIVE_NAME}:${localPath} leaves the run directory; open a file inside it`);
    }
    const listing = await this._api.files(workload);
    const file = listing.files.find(f => f.path === rel);
    if (!file) {
      const entries = folderEntries(listing.files, rel);
      if (entries === null) {
        throw new Error(
          `${DRIVE_NAME}:${localPath}: no such file in the run directory of ${workload}`
        );
      }
      return this._folder(
        localPath,
        entries.map(e => this._entry(workload, e)),
        options
      );
    }
    const kind = contentKind(rel);
    const base = {
      name: baseName(rel),
      path: `${workload}/${rel}`,
      writable: false,
      created: file.modified,
      last_modified: file.modified,
      size: file.size
    };
    const wanted = options?.content !== false;
    if (kind === 'notebook' && options?.type !== 'file') {
      const content = wanted ? await (await this._api.fileContent(workload, rel)).json() : null;
      return { ...base, type: 'notebook', format: wanted ? 'json' : null, mimetype: '', content };
    }
    if (!wanted) {
      return { ...base, type: 'file', format: null, mimetype: '', content: null };
    }
    const response = await this._api.fileContent(workload, rel);
    if (kind === 'binary' || options?.format === 'base64') {
      return {
        ...base,
        type: 'file',
        format: 'base64',
        mimetype: response.headers.get('Content-Type') ?? 'application/octet-stream',
        content: toBase64(await response.arrayBuffer())
      };
    }
    return {
      ...base,
      type: 'file',
      format: 'text',
      mimetype: 'text/plain',
      content: await response.text()
    };
  }

  async getDownloadUrl(localPath: string): Promise<string> {
    const { workload, rel } = splitLocalPath(localPath);
    if (!workload || !rel || unsafeRel(rel)) {
      throw new Error(`${DRIVE_NAME}:${localPath} is not a file of a run directory`);
    }
    return this._api.fileURL(workload, rel);
  }

  newUntitled(options?: Contents.ICreateOptions): Promise<Contents.IModel> {
    return readOnly('a new file', options?.path ?? '');
  }

  delete(localPath: string): Promise<void> {
    return readOnly('deleting', localPath);
  }

  rename(oldLocalPath: string): Promise<Contents.IModel> {
    return readOnly('renaming', oldLocalPath);
  }

  save(localPath: string): Promise<Contents.IModel> {
    return readOnly('saving', localPath);
  }

  copy(localPath: string): Promise<Contents.IModel> {
    return readOnly('copying within it', localPath);
  }

  createCheckpoint(localPath: string): Promise<Contents.ICheckpointModel> {
    return readOnly('a checkpoint', localPath);
  }

  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  restoreCheckpoint(localPath: string): Promise<void> {
    return readOnly('restoring a checkpoint', localPath);
  }

  deleteCheckpoint(localPath: string): Promise<void> {
    return readOnly('deleting a checkpoint', localPath);
  }

  private _entry(workload: string, node: IFileNode): Contents.IModel {
    const folder = !!node.children;
    return {
      name: node.name,
      path: `${workload}/${node.path}`,
      type: folder ? 'directory' : contentKind(node.path) === 'notebook' ? 'notebook' : 'file',
      writable: false,
      created: node.modified ?? '',
      last_modified: node.modified ?? '',
      mimetype: '',
      content: null,
      format: null,
      size: node.size
    };
  }

  private _folder(
    path: string,
    entries: Contents.IModel[],
    options?: Contents.IFetchOptions
  ): Contents.IModel {
    const wanted = options?.content !== false;
    return {
      name: baseName(path),
      path,
      type: 'directory',
      writable: false,
      created: '',
      last_modified: '',
      mimetype: '',
      content: wanted ? entries : null,
      format: wanted ? 'json' : null
    };
  }

  private _disposed = false;
  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
}
