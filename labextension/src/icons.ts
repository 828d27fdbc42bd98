import { LabIcon, listIcon } from '@jupyterlab/ui-components';

import workbenchSvg from '../style/icons/workbench.svg';

/** The sidebar tab and settings icon. */
export const workbenchIcon = new LabIcon({ name: 'workbench:icon', svgstr: workbenchSvg });

export const logsIcon = listIcon;
